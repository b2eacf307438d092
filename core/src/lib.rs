//! Pure logic of emu: every decision is a function of its inputs, with no I/O.
