"""Backbone providers: the model zoos people use for frozen features, behind the one backbone registry.

A backbone named ``prefix:model`` loads through the provider registered for ``prefix``
(:data:`headstart.features.provider.BUILTIN_PROVIDERS`); a name without a prefix is a torchvision model. Each
provider is an optional extra, imported only when one of its models is built or listed:

=========================  ==========================================  =============================
prefix                     example                                     install
=========================  ==========================================  =============================
``timm``                   ``timm:vit_small_patch14_dinov2.lvd142m``   ``pip install 'headstart[timm]'``
``hf``                     ``hf:facebook/dinov2-small``                ``pip install 'headstart[hf]'``
``open_clip``              ``open_clip:ViT-B-32/laion2b_s34b_b79k``    ``pip install 'headstart[open_clip]'``
``sentence-transformers``  ``sentence-transformers:all-MiniLM-L6-v2``  ``pip install 'headstart[text]'``
=========================  ==========================================  =============================

Each provider module has ``load(spec)``, ``list_models()`` (names without the prefix) and
``weights_present(name)``; ``base`` holds what they share, ``listing`` what ``headstart backbones`` shows.
"""
