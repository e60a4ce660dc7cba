namespace HybridServing.ControlPlane;

/// <summary>The <c>ControlPlane</c> configuration section.</summary>
internal sealed class ControlPlaneOptions
{
    public const string Section = "ControlPlane";

    /// <summary><c>Local</c> (YAML folder + configured engines) or <c>Kubernetes</c> (CRD informers, engine pods by label; see <c>ControlPlane:Kubernetes</c>).</summary>
    public string Home { get; set; } = "Local";

    /// <summary>Folder of LoraAdapter YAML files (<c>*.yaml</c>, <c>*.yml</c>), watched for changes.</summary>
    public string? ManifestsPath { get; set; }

    /// <summary>Engines, each reached through its sidecar.</summary>
    public List<EngineOptions> Engines { get; set; } = [];

    /// <summary>How often sources are listed again and everything is re-checked, even without events.</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Safety-net poll of the manifests folder, in case a file-system event is lost.</summary>
    public TimeSpan ManifestPollInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>First retry delay after a failure (per adapter and engine, per source, per sidecar call); doubles up to the maximum.</summary>
    public TimeSpan BackoffInitial { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan BackoffMax { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>An engine whose sidecar stays unreachable this long is dropped from placement and its adapters move.</summary>
    public TimeSpan EngineGracePeriod { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Reconnect delay bounds for a sidecar's WatchState stream.</summary>
    public TimeSpan ReconnectInitial { get; set; } = TimeSpan.FromMilliseconds(250);

    public TimeSpan ReconnectMax { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Deadline of one EnsureAdapters call.</summary>
    public TimeSpan SidecarCallTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Prefer engines on nodes that do not hold the adapter yet.</summary>
    public bool SpreadAcrossNodes { get; set; } = true;

    /// <summary>Sliding window over which gateways' reported requests make an adapter's observed rate.</summary>
    public TimeSpan DemandWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Requests per second one replica should take: a hot adapter gets <c>ceil(rate / RatePerReplica)</c> replicas, within its min and max.</summary>
    public double RatePerReplica { get; set; } = Placement.PlacementOptions.DefaultRatePerReplica;

    /// <summary>Overflow loads: gateways ask for a placed adapter on one more engine while its holders' GPU slots are taken.</summary>
    public OverflowGrantOptions Overflow { get; set; } = new();
}

/// <summary><c>ControlPlane:Overflow</c>: how <c>RequestLoad</c> with an engine is granted (see <see cref="Placement.OverflowGrants"/>).</summary>
internal sealed class OverflowGrantOptions
{
    /// <summary>False refuses every overflow load (reason <c>OverflowDisabled</c>); cold starts are unaffected.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// How long an overflow replica stays in the engine's desired set after a gateway last asked for it.
    /// Short: it is there because the adapter's holders were slot-bound, which lasts seconds; a gateway that
    /// still finds them so asks again. (Cluster simulator, 16 engines: 20 s gave a higher knee than 60 s.)
    /// </summary>
    public TimeSpan GrantTtl { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Adapters an engine may hold beyond its host slots (<c>max(max_loras, max_cpu_loras)</c>) for overflow
    /// loads; 0 = only free host slots. vLLM registers any number (its host cache is an LRU over them), so one
    /// more costs at most a local-disk reload later. (Cluster simulator, 16 engines: knee 49 req/s with 1,
    /// 59 with 8, 67 with 16, no higher with 64.)
    /// </summary>
    public int ExtraSlotsPerEngine { get; set; } = 16;
}

/// <summary><c>ControlPlane:Engines:N</c>: one engine and where its sidecar listens.</summary>
internal sealed class EngineOptions
{
    public string Name { get; set; } = "";

    /// <summary>Node (machine) name, for spreading replicas; defaults to what the sidecar reports, else the engine name.</summary>
    public string? Node { get; set; }

    /// <summary>The sidecar's gRPC URL (h2c), e.g. <c>http://127.0.0.1:9100</c>.</summary>
    public string SidecarUrl { get; set; } = "";

    /// <summary>Labels matched by <c>spec.deploymentConfig.podSelector</c>.</summary>
    public Dictionary<string, string> Labels { get; set; } = [];
}
