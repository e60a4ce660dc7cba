using System.Diagnostics;
using Prometheus;

namespace HybridServing.EngineSidecar.Telemetry;

/// <summary>The sidecar's Prometheus metrics (served on the Http endpoint's <c>/metrics</c>).</summary>
internal sealed class SidecarMetrics
{
    public static readonly ActivitySource ActivitySource = new("HybridServing.EngineSidecar");

    private static readonly double[] LoadBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
    private static readonly double[] DownloadBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800];

    public SidecarMetrics(IMetricFactory? factory = null)
    {
        var f = factory ?? Metrics.DefaultFactory;
        AdapterState = f.CreateGauge("hybridserving_sidecar_adapter_state",
            "1 for the current phase of each adapter the sidecar manages (pending, downloading, loading, loaded, failed, unloading).",
            new GaugeConfiguration { LabelNames = ["adapter", "phase"] });
        LoadDuration = f.CreateHistogram("hybridserving_sidecar_adapter_load_duration_seconds",
            "Duration of engine load calls, by result.", new HistogramConfiguration { LabelNames = ["result"], Buckets = LoadBuckets });
        DownloadDuration = f.CreateHistogram("hybridserving_sidecar_artifact_download_duration_seconds",
            "Duration of artifact downloads, by source kind and result.", new HistogramConfiguration { LabelNames = ["source", "result"], Buckets = DownloadBuckets });
        BytesDownloaded = f.CreateCounter("hybridserving_sidecar_artifact_downloaded_bytes_total",
            "Bytes downloaded for artifacts, by source kind.", new CounterConfiguration { LabelNames = ["source"] });
        Failures = f.CreateCounter("hybridserving_sidecar_failures_total",
            "Failures by reason (the AdapterStatus reason strings).", new CounterConfiguration { LabelNames = ["reason"] });
        CacheBytes = f.CreateGauge("hybridserving_sidecar_cache_bytes", "Bytes held in the artifact cache.");
        CacheBudgetBytes = f.CreateGauge("hybridserving_sidecar_cache_budget_bytes", "The artifact cache's size budget.");
        CacheArtifacts = f.CreateGauge("hybridserving_sidecar_cache_artifacts", "Artifacts held in the cache.");
        CacheEvictions = f.CreateCounter("hybridserving_sidecar_cache_evictions_total", "Artifacts evicted from the cache (LRU, unloaded only).");
        CacheHits = f.CreateCounter("hybridserving_sidecar_cache_hits_total", "Artifact resolutions served from the cache.");
        DriftRepairs = f.CreateCounter("hybridserving_sidecar_drift_repairs_total",
            "Adapters reloaded because the engine lost them (restart, crash or an outside unload).");
        EngineHealthy = f.CreateGauge("hybridserving_sidecar_engine_healthy", "1 when the engine's /health answered 200 at the last poll.");
    }

    public Gauge AdapterState { get; }
    public Histogram LoadDuration { get; }
    public Histogram DownloadDuration { get; }
    public Counter BytesDownloaded { get; }
    public Counter Failures { get; }
    public Gauge CacheBytes { get; }
    public Gauge CacheBudgetBytes { get; }
    public Gauge CacheArtifacts { get; }
    public Counter CacheEvictions { get; }
    public Counter CacheHits { get; }
    public Counter DriftRepairs { get; }
    public Gauge EngineHealthy { get; }

    public void Failure(string reason) => Failures.WithLabels(reason).Inc();
}
