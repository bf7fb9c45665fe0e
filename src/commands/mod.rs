pub mod audit;
pub mod dlq;
pub mod run;
