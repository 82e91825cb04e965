"""What the engine reads and what the app keeps: embedding matrices from files (io.py; tables
in table_readers.py) or shards larger than memory (shards.py), checked (arrays.py); datasets of
images and texts users bring (datasets.py, the way in, over image_sets.py, text_sets.py and
dataset_types.py; one image as RGB in images.py); the built-in demo (demo.py); the
content-addressed disk cache (cache.py) and the uploads a link names (uploads.py); what damage
to them is and how it is set aside (integrity.py), and checking them all (cache_check.py)."""
