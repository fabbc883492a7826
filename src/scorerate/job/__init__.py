"""One job: its Dask graph, the metric table, the sampler, the cluster and the watchdog."""
