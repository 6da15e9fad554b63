//! Receive-side scaling: the Toeplitz hash and queue selection (being written).
