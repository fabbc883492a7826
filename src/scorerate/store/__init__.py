"""One Zarr store per job: the variable table, the atomic writer and what a command may replace."""
