//! K-quant (Q2_K … Q6_K) and 5-bit (Q5_0, Q5_1) matrix products: being written.
