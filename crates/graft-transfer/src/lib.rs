//! Transfer learning for graft: a strategy is a pure function from a backbone's block groups to
//! a freeze plan; the frozen part is computed once per image and cached on disk; the trainable
//! part is trained on what the cache holds.

pub mod auto;
pub mod cache;
pub mod cache_admin;
pub mod class_map;
pub mod features;
pub mod finetune;
pub mod fit;
pub mod head;
pub mod lbfgs;
pub mod linear_head;
pub mod logistic;
pub mod lr_find;
pub mod metrics;
pub mod schedule;
pub mod train;

pub use cache::{CacheKey, CacheStats, FeatureCache};
pub use graft_spec::{FreezePlan, Strategy, StrategyError};
pub use metrics::Confusion;
