//! Integration tests of edgecc-storage, one module per property.

mod acknowledgements;
mod background_check;
mod backup;
mod crash;
mod dead_letters;
mod fixture;
mod known_errors;
mod model;
mod ordering;
mod power_cut;
mod power_cut_fs;
mod powercut_fs;
mod recovery;
mod salvage;
mod space;
mod stall;
mod state;
mod util;
