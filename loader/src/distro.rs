//! distro
