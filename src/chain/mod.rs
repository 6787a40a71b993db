//! Running a chain from a card: the loop, measurements, checkpoints, restart and the summary.

pub mod card;
#[cfg(feature = "cuda")]
pub mod device;
pub mod fields;
pub mod footprint;
pub mod measure;
pub mod progress;
pub mod rational;
pub mod run;
pub mod summary;
pub mod train;

pub use card::{Card, DEFAULT_CARD, TrainingCard};
pub use run::{RunOptions, run_card};
pub use summary::{Summary, analyze};
pub use train::train_card;
