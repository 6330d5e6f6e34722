"""Analysis of recurrent maps: Jacobians across lags, eigen spectra, bounds, Lyapunov exponents.

    state         a carry as one state vector s_t (LSTM: [h, c]) and its hidden block
    jacobians     per-step Jacobians ds_t/ds_{t-1} along a trajectory, any cell
    products      ds_t/ds_k for all lags: prefix products and log norms by lag
    gradients     dL_t/ds_k by lag, through the scan (vjp) or by Jacobian products
    eigen         spectral radius, eigendecomposition, h_t = Q Lambda^t Q^T h_0, the bound
    lyapunov      Lyapunov exponents by the QR method
    graph         the unfolded computational graph traced from a T-step unroll
    graph_figure  drawing it with matplotlib
    report        markdown tables and PNG files for the studies in experiments/
"""

from seqlab.analysis import eigen, gradients, graph, jacobians, lyapunov, products, state

__all__ = ["eigen", "gradients", "graph", "jacobians", "lyapunov", "products", "state"]
