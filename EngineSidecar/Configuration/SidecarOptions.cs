namespace HybridServing.EngineSidecar.Configuration;

/// <summary>The <c>Sidecar:</c> configuration section. Durations are in seconds (a bare number bound to a
/// TimeSpan would mean days, which is how sidecars end up waiting for a week).</summary>
internal sealed class SidecarOptions
{
    public const string SectionName = "Sidecar";

    /// <summary>Root URL of the engine's HTTP API, e.g. <c>http://127.0.0.1:8000</c>.</summary>
    public string? EngineUrl { get; set; }

    /// <summary><c>vllm</c> (also for the MockEngine) or <c>sglang</c>.</summary>
    public string EngineKind { get; set; } = "vllm";

    /// <summary>The engine's <c>--api-key</c>. Sent as a bearer token, never logged.</summary>
    public string? EngineApiKey { get; set; }

    /// <summary>The engine URL reported to the control plane (and so to gateways); see <see cref="AdvertisedEngine"/>.</summary>
    public string? AdvertisedEngineUrl { get; set; }

    /// <summary>The pod's IP (downward API <c>status.podIP</c>; <c>POD_IP</c> also works). Replaces a loopback engine host in the advertised URL.</summary>
    public string? PodIp { get; set; }

    public string? PodName { get; set; }
    public string? NodeName { get; set; }

    /// <summary>Where downloaded artifacts live, content-addressed by the sha256 of their weights. One per sidecar:
    /// unset, it is <c>$TMP/hybridserving-sidecar-cache/{PodName, else engine host_port}</c>, so several local
    /// sidecars never share one.</summary>
    public string? CacheDirectory { get; set; }

    public string EffectiveCacheDirectory
    {
        get
        {
            if (!string.IsNullOrWhiteSpace(CacheDirectory)) return CacheDirectory;
            var owner = !string.IsNullOrWhiteSpace(PodName) ? PodName
                : Uri.TryCreate(EngineUrl, UriKind.Absolute, out var u) ? $"{u.Host}_{u.Port}" : "default";
            var safe = new string(owner.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray()).Trim('.');
            return Path.Combine(Path.GetTempPath(), "hybridserving-sidecar-cache", safe.Length == 0 ? "default" : safe);
        }
    }

    /// <summary>Cache size budget; artifacts not loaded are evicted least recently used first.</summary>
    public long CacheBudgetBytes { get; set; } = 20L << 30;

    /// <summary>Local adapter paths (plain paths and <c>file://</c>) must lie inside one of these.
    /// Empty: local sources are refused.</summary>
    public List<string> AllowedLocalRoots { get; set; } = [];

    /// <summary>Engine capacity when known from the deployment; else read from the engine's metrics.</summary>
    public int? MaxLoras { get; set; }
    public int? MaxCpuLoras { get; set; }
    public int MaxLoraRank { get; set; } = 16;
    public long AdapterMemoryBudgetBytes { get; set; }

    public double EngineHealthTimeoutSeconds { get; set; } = 300;
    public double EngineHealthIntervalSeconds { get; set; } = 2;
    /// <summary>Forced full reconcile period (the lora-syncer's <c>--reconcile-trigger</c>).</summary>
    public double ReconcileIntervalSeconds { get; set; } = 5;
    /// <summary>How often the engine's <c>/health</c>, <c>/v1/models</c> and <c>/metrics</c> are polled
    /// for drift and load. Small, because a restarted engine must get its adapters back within seconds.</summary>
    public double EnginePollIntervalSeconds { get; set; } = 1;

    public EngineCallOptions Engine { get; set; } = new();
    public ArtifactOptions Artifacts { get; set; } = new();
    public S3Options S3 { get; set; } = new();
    public HubOptions Hub { get; set; } = new();
    /// <summary>Where spec.credentialsSecretRef Secrets are read (see <see cref="KubernetesAccessOptions"/>).</summary>
    public KubernetesAccessOptions Kubernetes { get; set; } = new();
    public SourcesOptions Sources { get; set; } = new();

    /// <summary>File mode (as in the lora-syncer): the desired set comes from this vLLMLoRAConfig YAML file.</summary>
    public string? ConfigFile { get; set; }

    /// <summary><c>grpc</c> or <c>file</c>. Unset: <c>file</c> when ConfigFile is set, or when the lora-syncer's flags were used
    /// and no EngineUrl is known; else <c>grpc</c>. File mode without ConfigFile reads /config/configmap.yaml.</summary>
    public string? Mode { get; set; }

    /// <summary>The lora-syncer's flags were on the command line (set by LoraSyncerCommandLine).</summary>
    public bool LoraSyncerFlags { get; set; }

    /// <summary>With validation, an invalid config file is refused as a whole; without, bad entries are skipped.</summary>
    public bool ConfigValidation { get; set; } = true;

    public const string DefaultConfigFile = "/config/configmap.yaml";

    public bool FileMode => Mode is { Length: > 0 } mode ? string.Equals(mode, "file", StringComparison.OrdinalIgnoreCase)
        : !string.IsNullOrWhiteSpace(ConfigFile) || (LoraSyncerFlags && string.IsNullOrWhiteSpace(EngineUrl));
    public string EffectiveConfigFile => string.IsNullOrWhiteSpace(ConfigFile) ? DefaultConfigFile : ConfigFile;

    public static TimeSpan Seconds(double value) => TimeSpan.FromSeconds(value);

    /// <summary>Every wrong setting, each with the key to fix. Empty when the options are usable.</summary>
    public IEnumerable<string> Validate()
    {
        if (!FileMode)
        {
            if (string.IsNullOrWhiteSpace(EngineUrl))
                yield return "Sidecar:EngineUrl is required (the engine's root URL, e.g. http://127.0.0.1:8000).";
        }
        if (!string.IsNullOrWhiteSpace(EngineUrl)
            && (!Uri.TryCreate(EngineUrl, UriKind.Absolute, out var u) || (u.Scheme != Uri.UriSchemeHttp && u.Scheme != Uri.UriSchemeHttps)))
            yield return $"Sidecar:EngineUrl '{EngineUrl}' is not an absolute http(s) URL.";
        foreach (var problem in AdvertisedEngine.Validate(this)) yield return problem;
        if (EngineKind is not ("vllm" or "sglang" or "mock"))
            yield return $"Sidecar:EngineKind '{EngineKind}' is not supported; use 'vllm' or 'sglang'.";
        if (Mode is not (null or "" or "grpc" or "file"))
            yield return $"Sidecar:Mode '{Mode}' is not supported; use 'grpc' or 'file'.";
        if (CacheDirectory is not null && !string.IsNullOrWhiteSpace(CacheDirectory) && !Path.IsPathFullyQualified(CacheDirectory))
            yield return $"Sidecar:CacheDirectory '{CacheDirectory}' must be an absolute path.";
        if (CacheBudgetBytes <= 0) yield return "Sidecar:CacheBudgetBytes must be positive.";
        if (MaxLoras is <= 0) yield return "Sidecar:MaxLoras must be at least 1.";
        if (MaxCpuLoras is { } cpu && MaxLoras is { } gpu && cpu < gpu)
            yield return $"Sidecar:MaxCpuLoras ({cpu}) must be >= Sidecar:MaxLoras ({gpu}).";
        if (MaxLoraRank <= 0) yield return "Sidecar:MaxLoraRank must be positive.";
        foreach (var (key, value) in new[]
                 {
                     ("EngineHealthTimeoutSeconds", EngineHealthTimeoutSeconds), ("EngineHealthIntervalSeconds", EngineHealthIntervalSeconds),
                     ("ReconcileIntervalSeconds", ReconcileIntervalSeconds), ("EnginePollIntervalSeconds", EnginePollIntervalSeconds),
                     ("Engine:RequestTimeoutSeconds", Engine.RequestTimeoutSeconds), ("Engine:LoadTimeoutSeconds", Engine.LoadTimeoutSeconds),
                     ("Artifacts:DownloadTimeoutSeconds", Artifacts.DownloadTimeoutSeconds), ("Artifacts:IdleTimeoutSeconds", Artifacts.IdleTimeoutSeconds),
                 })
        {
            if (!(value > 0) || double.IsInfinity(value)) yield return $"Sidecar:{key} must be a positive number of seconds (got {value}).";
        }
        if (Engine.MaxAttempts < 1) yield return "Sidecar:Engine:MaxAttempts must be at least 1.";
        if (Artifacts.MaxBytes <= 0) yield return "Sidecar:Artifacts:MaxBytes must be positive.";
        if (Artifacts.MaxConcurrentDownloads < 1) yield return "Sidecar:Artifacts:MaxConcurrentDownloads must be at least 1.";
        if (!string.IsNullOrWhiteSpace(S3.ServiceUrl) && !Uri.TryCreate(S3.ServiceUrl, UriKind.Absolute, out _))
            yield return $"Sidecar:S3:ServiceUrl '{S3.ServiceUrl}' is not an absolute URL.";
        if (!string.IsNullOrWhiteSpace(Hub.Endpoint) && !Uri.TryCreate(Hub.Endpoint, UriKind.Absolute, out _))
            yield return $"Sidecar:Hub:Endpoint '{Hub.Endpoint}' is not an absolute URL.";
        if (!string.IsNullOrWhiteSpace(Kubernetes.ApiServerUrl)
            && (!Uri.TryCreate(Kubernetes.ApiServerUrl, UriKind.Absolute, out var api) || (api.Scheme != Uri.UriSchemeHttp && api.Scheme != Uri.UriSchemeHttps)))
            yield return $"Sidecar:Kubernetes:ApiServerUrl '{Kubernetes.ApiServerUrl}' is not an absolute http(s) URL.";
        foreach (var problem in Sources.Http.AllowedHosts.Select(Contracts.Net.OutboundGuard.CheckEntry).OfType<string>())
            yield return $"Sidecar:Sources:Http:AllowedHosts: {problem}.";
        foreach (var root in AllowedLocalRoots)
        {
            if (!Path.IsPathFullyQualified(root))
                yield return $"Sidecar:AllowedLocalRoots entry '{root}' must be an absolute path.";
        }
    }
}

internal sealed class EngineCallOptions
{
    /// <summary>Timeout of one health, models, metrics or unload call.</summary>
    public double RequestTimeoutSeconds { get; set; } = 10;
    /// <summary>Timeout of one load call: the engine reads the weights before it answers.</summary>
    public double LoadTimeoutSeconds { get; set; } = 120;
    /// <summary>Attempts for a call that failed transiently (connection refused, 502/503/504, timeout).</summary>
    public int MaxAttempts { get; set; } = 3;
    public double RetryBaseDelaySeconds { get; set; } = 0.2;
}

internal sealed class ArtifactOptions
{
    /// <summary>Largest artifact (sum of its files) a download may produce.</summary>
    public long MaxBytes { get; set; } = 8L << 30;
    /// <summary>Whole-download deadline.</summary>
    public double DownloadTimeoutSeconds { get; set; } = 1800;
    /// <summary>A server that sends nothing for this long is abandoned (slow-loris and hung servers).</summary>
    public double IdleTimeoutSeconds { get; set; } = 30;
    public int MaxConcurrentDownloads { get; set; } = 4;
}

internal sealed class S3Options
{
    /// <summary>Endpoint override (MinIO, s3rver, ...). Else <c>AWS_ENDPOINT_URL_S3</c>/<c>AWS_ENDPOINT_URL</c>, else AWS.</summary>
    public string? ServiceUrl { get; set; }
    public string? Region { get; set; }
    /// <summary>Path-style addressing (<c>endpoint/bucket/key</c>). Unset: on with an endpoint override (MinIO, Ceph,
    /// s3rver are reached by a name whose subdomains do not resolve), off for AWS; the ControlPlane's default too.</summary>
    public bool? ForcePathStyle { get; set; }
    /// <summary>A mounted secret with files <c>aws_access_key_id</c>, <c>aws_secret_access_key</c> and
    /// optionally <c>aws_session_token</c>. Without it the SDK's chain (environment, profile, IMDS) is used.</summary>
    public string? CredentialsDirectory { get; set; }
}

internal sealed class KubernetesAccessOptions
{
    /// <summary>An API server URL (no credentials: tests and the API stand-in). Unset: the pod's ServiceAccount when in
    /// a cluster, else no access (an adapter naming a Secret then fails with CredentialsMissing).</summary>
    public string? ApiServerUrl { get; set; }
}

internal sealed class HubOptions
{
    /// <summary>Hub base URL; else <c>HF_ENDPOINT</c>, else https://huggingface.co.</summary>
    public string? Endpoint { get; set; }
    /// <summary>Else <c>HF_TOKEN</c>; never logged, never sent over plain HTTP to a non-loopback host.</summary>
    public string? Token { get; set; }
    /// <summary>A mounted file holding the token; else <c>HF_TOKEN_PATH</c>.</summary>
    public string? TokenFile { get; set; }
    public string DefaultRevision { get; set; } = "main";
}

internal sealed class SourcesOptions
{
    public HttpSourceOptions Http { get; set; } = new();
}

/// <summary><c>Sidecar:Sources:Http</c>: the SSRF guard of http(s) and Hub downloads (<see cref="Contracts.Net.OutboundGuard"/>).</summary>
internal sealed class HttpSourceOptions
{
    /// <summary>Hosts, IP addresses or CIDR ranges that may be loopback, link-local or private.</summary>
    public List<string> AllowedHosts { get; set; } = [];
    /// <summary>Turns the guard off: any address may be fetched.</summary>
    public bool AllowPrivateNetworks { get; set; }
}
