"""Semantic tokens: MFCC/log-mel features, mini-batch k-means, a small HuBERT and local SSL checkpoints.

Frame-rate contract shared by every feature path here: a wave of ``T`` samples yields exactly
``T // hop_length`` frames (floor), where ``hop_length = sample_rate / frame_rate``; frame ``i``
stands for samples ``[i * hop, (i + 1) * hop)``.
"""
