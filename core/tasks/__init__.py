"""One package per task: ``core/tasks/<name>/`` holds its data, its models, its adapter for the engine and what
only it needs. Each package's ``__init__`` registers a :class:`core.registry.TaskSpec`; the registry finds the
packages by listing this folder, so a new task is a new folder.

- ``images/``  CIFAR-10 (or any image folder): timm CNNs and vision transformers, the paper head, the frozen-feature
  cache, the linear SVM on frozen features.
- ``tweets/``  COVID-19 fake-news tweets: BERT, BERT+BiGRU, MiniLM; the frozen-encoder cache.
- ``qa/``      Persian extractive QA (PQuAD, SQuAD 2.0): window preprocessing, n-best decoding, SQuAD-v2 metrics, the
  offline e5-small reader.
"""
