//! Every complete run card shown in README.md parses and validates.

use flowhmc::chain::card::Card;

#[test]
fn readme_cards_are_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = text.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    let cards: Vec<&str> = blocks.into_iter().filter(|b| b.contains("[lattice]")).collect();
    assert!(cards.len() >= 4, "found {} cards", cards.len());
    for (i, card) in cards.iter().enumerate() {
        Card::parse(card, &format!("README card {i}")).unwrap();
    }
}
