"""Teaching modules: models written out in plain torch so that a student reads the maths, each checked against the
library implementation it explains.

- :mod:`core.teaching.bert_scratch`: a BERT encoder from scratch (embeddings, scaled dot-product attention,
  multi-head self-attention, feed-forward, residual + LayerNorm) that loads a transformers ``BertModel``'s weights
  and gives its outputs and attention maps.
"""
