//! emu-nodeagent library.
