//! Every complete run card shown in README.md parses and validates; a card with `[train]` is
//! also a valid training card. (Model files a card names are replaced by a file that exists,
//! since validation checks that the model is there.)

use flowhmc::chain::card::{Card, TrainingCard};

#[test]
fn readme_cards_are_valid() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks: Vec<&str> = text.split("```toml\n").skip(1).filter_map(|b| b.split("```").next()).collect();
    let cards: Vec<&str> = blocks.into_iter().filter(|b| b.contains("[lattice]")).collect();
    assert!(cards.len() >= 5, "found {} cards", cards.len());
    let model = std::env::temp_dir().join(format!("flowhmc-readme-{}.safetensors", std::process::id()));
    std::fs::write(&model, b"stands in for a trained model").unwrap();
    let mut training_cards = 0;
    for (i, card) in cards.iter().enumerate() {
        let origin = format!("README card {i}");
        if card.contains("[train]") {
            TrainingCard::parse(card, &origin).unwrap();
            training_cards += 1;
        }
        let with_model: Vec<String> = card
            .split('"')
            .map(
                |piece| {
                    if piece.ends_with(".safetensors") { model.display().to_string() } else { piece.into() }
                },
            )
            .collect();
        Card::parse(&with_model.join("\""), &origin).unwrap();
    }
    assert!(training_cards >= 1);
    std::fs::remove_file(&model).unwrap();
}
