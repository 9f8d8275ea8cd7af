"""One file per family member; each registers itself with ``@register``. See ``aezoo.list_models()``."""
