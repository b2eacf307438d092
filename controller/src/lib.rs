//! emu-controller library.
