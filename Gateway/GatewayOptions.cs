namespace HybridServing.Gateway;

/// <summary>The <c>Gateway</c> configuration section.</summary>
internal sealed class GatewayOptions
{
    public const string Section = "Gateway";

    /// <summary>Configuration key (Aspire convention) holding the ControlPlane's gRPC address.</summary>
    public const string ControlPlaneGrpcKey = "services:controlplane:grpc:0";

    /// <summary>Largest accepted request body; larger bodies get 413.</summary>
    public int MaxRequestBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Longest a client may take to send its request body (slow-loris uploads); then 408. Kestrel's minimum
    /// body data rate (240 bytes/s after 5 s) applies as well and answers 408 the same way.
    /// </summary>
    public TimeSpan RequestBodyTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Response header naming the engine that served; empty turns it off.</summary>
    public string EngineHeader { get; set; } = "x-hybridserving-engine";

    /// <summary>Idle time allowed between bytes from the engine; long so slow first tokens survive.</summary>
    public TimeSpan ActivityTimeout { get; set; } = TimeSpan.FromMinutes(10);

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Engines tried per request when connecting fails before any response byte.</summary>
    public int MaxAttempts { get; set; } = 2;

    /// <summary>Bearer key sent to engines started with <c>--api-key</c>; the client's key is never forwarded.</summary>
    public string? EngineApiKey { get; set; }

    public RoutingTableOptions RoutingTable { get; set; } = new();
    public PickingOptions Picking { get; set; } = new();
    public LoadOptions Load { get; set; } = new();
    public ColdStartOptions ColdStart { get; set; } = new();
    public PassiveHealthOptions PassiveHealth { get; set; } = new();
    public TenancyOptions Tenancy { get; set; } = new();
    public List<TenantOptions> Tenants { get; set; } = [];
    public RateLimitOptions RateLimits { get; set; } = new();
    public DemandOptions Demand { get; set; } = new();

    /// <summary>Aliases and canaries: alias → (target model → weight). Sticky per session/user/tenant.</summary>
    public Dictionary<string, Dictionary<string, double>> Aliases { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Request header whose value keeps a session on one alias target (before the body's <c>user</c>, then the tenant).</summary>
    public string StickyHeader { get; set; } = "x-session-id";
}

/// <summary><c>Gateway:Demand</c>: per-adapter request counts reported to the ControlPlane for placement.</summary>
internal sealed class DemandOptions
{
    /// <summary>How often counts are sent (<c>ReportDemand</c>); zero turns reporting off.</summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class RoutingTableOptions
{
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(200);
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>Name sent in WatchRoutes, for the ControlPlane's logs.</summary>
    public string GatewayName { get; set; } = Environment.MachineName;
}

internal sealed class PickingOptions
{
    /// <summary><c>hybrid</c> (default), <c>round-robin</c>, <c>least-request</c> or <c>lora-affinity</c> (GIE baseline).</summary>
    public string Policy { get; set; } = "hybrid";

    /// <summary>Scorer weights of the hybrid policy, by scorer name (residency, queue, kv-cache, in-flight).</summary>
    public Dictionary<string, double> Weights { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>An engine with this many waiting requests or more counts as saturated.</summary>
    public int SaturationQueueDepth { get; set; } = 16;

    /// <summary>An engine whose KV cache usage is at or above this counts as saturated.</summary>
    public double SaturationKvCacheUsage { get; set; } = 0.9;

    /// <summary>Scraped load older than this is ignored (treated as unknown).</summary>
    public TimeSpan MaxLoadAge { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Seed for tie-breaking; null seeds from the clock.</summary>
    public int? Seed { get; set; }

    /// <summary>Overflow loads (hybrid policy only): see <see cref="Picking.OverflowAdvisor"/>.</summary>
    public OverflowOptions Overflow { get; set; } = new();
}

/// <summary>
/// <c>Gateway:Picking:Overflow</c>: when every engine holding an adapter has all its GPU slots taken by
/// other adapters, ask the ControlPlane to load it on an engine with free slots and send the request there.
/// </summary>
internal sealed class OverflowOptions
{
    /// <summary>Unset: on with the hybrid policy, off with the baselines. False turns it off; true with a baseline is a configuration error.</summary>
    public bool? Enabled { get; set; }

    /// <summary>Free GPU slots the target must keep beyond the one the adapter takes (so overflow never fills an engine's last slot).</summary>
    public int FreeSlotHeadroom { get; set; } = 1;

    /// <summary>Targets with more waiting requests than this are not used.</summary>
    public int MaxQueueDepth { get; set; } = 3;

    /// <summary>How long a request waits for the overflow load before going to the adapter's holder after all.</summary>
    public TimeSpan Wait { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>After the ControlPlane refuses an (adapter, engine) overflow, it is not asked for that pair again for this long.</summary>
    public TimeSpan RefusalCooldown { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The control path's cost assumed until the first overflow load has been timed (≈ 0.1 s measured on the live stack).</summary>
    public TimeSpan ControlPathCost { get; set; } = TimeSpan.FromSeconds(0.1);

    /// <summary>
    /// How many times the control path the expected slot wait must be for an overflow: the overflowed
    /// request pays the load for certain while the wait is an estimate, and the load takes a slot on the target.
    /// </summary>
    public double WaitToCostRatio { get; set; } = 2;

    /// <summary>Weight of each new observation in the service-time and control-path means (0–1].</summary>
    public double CostSmoothing { get; set; } = 0.05;
}

internal sealed class LoadOptions
{
    /// <summary>How often engine <c>/metrics</c> are scraped; zero turns scraping off.</summary>
    public TimeSpan ScrapeInterval { get; set; } = TimeSpan.FromMilliseconds(50);
    public TimeSpan ScrapeTimeout { get; set; } = TimeSpan.FromSeconds(1);
}

internal sealed class ColdStartOptions
{
    /// <summary>How long a request waits for a cold adapter to become loaded before 503.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);
    public int RetryAfterSeconds { get; set; } = 5;
}

internal sealed class PassiveHealthOptions
{
    /// <summary>Consecutive connection failures that eject an engine.</summary>
    public int FailureThreshold { get; set; } = 1;
    public TimeSpan EjectionDuration { get; set; } = TimeSpan.FromSeconds(10);
    /// <summary>Longest Retry-After from an engine that is honoured.</summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromMinutes(1);
}

internal sealed class TenancyOptions
{
    /// <summary>When false, requests without a key are served as an anonymous tenant that may use every namespace.</summary>
    public bool RequireApiKey { get; set; } = true;

    /// <summary>YAML or JSON file of tenants with SHA-256 key hashes (see <see cref="Tenancy.ApiKeyFile"/>).</summary>
    public string? KeysFile { get; set; }

    /// <summary>How often the keys file is checked for rotation; zero turns reloading off.</summary>
    public TimeSpan KeysFileReloadInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>True: another tenant's adapter answers 404 like an unknown model. False: 403.</summary>
    public bool HideForeignAdapters { get; set; } = true;

    /// <summary>Key for <c>GET /admin/usage</c> (plain, hashed at start); unset (with the hash unset too) disables the view.</summary>
    public string? AdminApiKey { get; set; }
    /// <summary>Hex SHA-256 of the admin key.</summary>
    public string? AdminApiKeySha256 { get; set; }
}

internal sealed class TenantOptions
{
    public string Name { get; set; } = "";
    /// <summary>Plain key (development only): hashed at start and not kept.</summary>
    public string? ApiKey { get; set; }
    /// <summary>Hex SHA-256 of the key.</summary>
    public string? ApiKeySha256 { get; set; }
    /// <summary>LoraAdapter namespaces the tenant may use; <c>*</c> means all.</summary>
    public List<string> Namespaces { get; set; } = [];
    /// <summary>Overrides <see cref="RateLimitOptions.TenantRequestsPerMinute"/> for this tenant; 0 = unlimited.</summary>
    public int? RequestsPerMinute { get; set; }
    /// <summary>Overrides <see cref="RateLimitOptions.TenantTokensPerMinute"/> for this tenant; 0 = unlimited.</summary>
    public long? TokensPerMinute { get; set; }
}

internal sealed class RateLimitOptions
{
    /// <summary>Requests per minute per tenant; 0 = unlimited.</summary>
    public int TenantRequestsPerMinute { get; set; }
    /// <summary>Prompt + completion tokens per minute per tenant (from engines' usage); 0 = unlimited.</summary>
    public long TenantTokensPerMinute { get; set; }
    /// <summary>Requests per minute per adapter (over all tenants); 0 = unlimited.</summary>
    public int AdapterRequestsPerMinute { get; set; }
    /// <summary>Per-adapter overrides by adapter name.</summary>
    public Dictionary<string, int> Adapters { get; set; } = new(StringComparer.Ordinal);
}
