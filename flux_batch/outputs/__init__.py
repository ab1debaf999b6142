"""What a run leaves for people and tools: the folder's layout (``layout``: file and folder names, CSV
columns), the tables rewritten from the state (``tables``: manifest.csv and run.json; ``metadata``:
metadata.parquet; ``snapshot``: both from one snapshot of the state, in a child process of the run), the
folder read back as records (``results``: what ``flux_batch.results`` returns), each image's quality
values (``quality``) and thumbnail (``derived``: both from one decode, in worker processes), paths read
back kept inside the folder (``safepath``), and the move of a folder made by an older version to the
current layout (``relayout``)."""
