"""Training data: blur kernels, seeded degradations, datasets, the photo corpus builder.

- ``kernels``: Real-ESRGAN blur kernels and a batched per-sample ``filter2d``.
- ``degradation``: ``build_degradation("realesrgan" | "bicubic" | "face", scale)`` returns a
  callable ``deg(hr, generator) -> lr`` (tensors in [0, 1]); ``DegradationConfig`` presets.
- ``jpeg``: real JPEG (Pillow) per image.
- ``datasets``: ``CropDataset``, ``PairedFolderDataset``, ``make_training_pairs``.
- ``corpus``: ``build_photo_corpus`` (Debian packages) / ``build_folder_corpus``.
- ``pairs``: ``make_eval_pairs`` (fixed evaluation set).
- ``cli``: ``tadsr data photos`` and ``tadsr data pairs``.
"""
