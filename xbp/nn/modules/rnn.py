"""torch.nn.modules.rnn: RNN, LSTM, GRU and the cells (RNNBase, RNNCellBase as bases)."""
from ..rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNCell, _CellBase, _RNNBase  # noqa: F401

RNNBase = _RNNBase
RNNCellBase = _CellBase
__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
