using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Sources;

/// <summary>How remote adapter sources are reached: keys of the <c>ControlPlane</c> section.</summary>
internal sealed class SourceOptions
{
    /// <summary>Folder of secrets, one sub-folder per secret holding one file per key (a Kubernetes secret volume's layout):
    /// <c>{SecretsDirectory}/{credentialsSecretRef.name}/AWS_ACCESS_KEY_ID</c>.</summary>
    public string? SecretsDirectory { get; set; }

    /// <summary>The Hugging Face Hub; else <c>HF_ENDPOINT</c>, else https://huggingface.co.</summary>
    public string? HubEndpoint { get; set; }

    /// <summary>Deadline of every single network call made while listing a source (a listing page, a ranged read).</summary>
    public TimeSpan SourceRequestTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How many adapters of one source are inspected at once.</summary>
    public int SourceConcurrency { get; set; } = 8;

    public S3SourceOptions S3 { get; set; } = new();

    /// <summary><c>ControlPlane:AllowedLocalRoots:N</c>: folders a <c>type: local</c> repository must lie inside (after
    /// resolving <c>..</c> and symlinks), the same policy every sidecar applies with <c>Sidecar:AllowedLocalRoots</c>.
    /// Empty: the Local home allows <c>ControlPlane:ManifestsPath</c>; the Kubernetes home does not check (the sidecars do).</summary>
    public List<string> AllowedLocalRoots { get; set; } = [];

    /// <summary><c>ControlPlane:Sources:Http</c>: the SSRF guard of source listing (Hub and http).</summary>
    public ControlPlaneSourcesOptions Sources { get; set; } = new();
}

internal sealed class ControlPlaneSourcesOptions
{
    public HttpGuardOptions Http { get; set; } = new();
}

/// <summary>Hosts, IP addresses or CIDR ranges that may be loopback, link-local or private; or every address.</summary>
internal sealed class HttpGuardOptions
{
    public List<string> AllowedHosts { get; set; } = [];
    public bool AllowPrivateNetworks { get; set; }
}

/// <summary><c>ControlPlane:S3:*</c>: defaults for <c>type: s3</c> sources; a secret's <c>AWS_ENDPOINT_URL</c>/<c>AWS_REGION</c> win.</summary>
internal sealed class S3SourceOptions
{
    /// <summary>Endpoint override (MinIO, Ceph, s3rver); else <c>AWS_ENDPOINT_URL_S3</c>/<c>AWS_ENDPOINT_URL</c>, else AWS.</summary>
    public string? ServiceUrl { get; set; }

    /// <summary>Else <c>AWS_REGION</c>/<c>AWS_DEFAULT_REGION</c>, else us-east-1.</summary>
    public string? Region { get; set; }

    /// <summary>Path-style addressing; default: on when an endpoint override is in use (S3-compatible stores), off for AWS.</summary>
    public bool? ForcePathStyle { get; set; }
}

internal sealed class SourceOptionsValidator : IValidateOptions<SourceOptions>
{
    public ValidateOptionsResult Validate(string? name, SourceOptions o)
    {
        var errors = new List<string>();
        if (o.SourceRequestTimeout <= TimeSpan.Zero) errors.Add("ControlPlane:SourceRequestTimeout must be positive.");
        if (o.SourceConcurrency is < 1 or > 64) errors.Add($"ControlPlane:SourceConcurrency {o.SourceConcurrency} must be between 1 and 64.");
        if (o.HubEndpoint is { } hub && !IsHttpUrl(hub)) errors.Add($"ControlPlane:HubEndpoint '{hub}' must be an absolute http(s) URL.");
        if (o.S3.ServiceUrl is { } s3 && !IsHttpUrl(s3)) errors.Add($"ControlPlane:S3:ServiceUrl '{s3}' must be an absolute http(s) URL.");
        if (o.SecretsDirectory is { Length: 0 }) errors.Add("ControlPlane:SecretsDirectory must not be empty when set.");
        foreach (var problem in o.Sources.Http.AllowedHosts.Select(Contracts.Net.OutboundGuard.CheckEntry).OfType<string>())
            errors.Add($"ControlPlane:Sources:Http:AllowedHosts: {problem}.");
        foreach (var root in o.AllowedLocalRoots.Where(r => !Path.IsPathFullyQualified(r)))
            errors.Add($"ControlPlane:AllowedLocalRoots entry '{root}' must be an absolute path.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static bool IsHttpUrl(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var u) && u.Scheme is "http" or "https" && string.IsNullOrEmpty(u.UserInfo);
}

/// <summary>The process environment, injectable so tests never share or mutate the real one.</summary>
internal sealed record SourceEnvironment(Func<string, string?> Get)
{
    public static readonly SourceEnvironment Process = new(Environment.GetEnvironmentVariable);
}

internal static class SourceRegistration
{
    /// <summary>Discovery for every <c>adapterSource.type</c>, with its options (<c>ControlPlane:*</c>, see <see cref="SourceOptions"/>).</summary>
    public static IServiceCollection AddAdapterSources(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<SourceOptions>().Bind(configuration.GetSection(ControlPlaneOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<SourceOptions>, SourceOptionsValidator>();
        services.AddSingleton(SourceEnvironment.Process);
        services.AddSingleton<ISecretReader>(sp => new DirectorySecretReader(sp.GetRequiredService<IOptions<SourceOptions>>().Value.SecretsDirectory));
        services.AddSingleton<SourceHttp>();
        services.AddSingleton(sp => new LocalAdapterDiscovery(LocalAdapterDiscovery.Roots(
            sp.GetRequiredService<IOptions<SourceOptions>>().Value, sp.GetRequiredService<IOptions<ControlPlaneOptions>>().Value)));
        services.AddSingleton<S3AdapterDiscovery>();
        services.AddSingleton<HubAdapterDiscovery>();
        services.AddSingleton<HttpAdapterDiscovery>();
        services.AddSingleton<IAdapterDiscovery, SourceDiscovery>();
        return services;
    }
}

/// <summary>Sends each LoraAdapter to the discovery of its <c>adapterSource.type</c>.</summary>
internal sealed class SourceDiscovery(LocalAdapterDiscovery local, S3AdapterDiscovery s3, HubAdapterDiscovery hub, HttpAdapterDiscovery http) : IAdapterDiscovery
{
    public Task<DiscoveryResult> DiscoverAsync(DiscoveryRequest request, CancellationToken cancellationToken) => request.Source.Type switch
    {
        Contracts.Resources.AdapterSourceTypes.Local => local.DiscoverAsync(request, cancellationToken),
        Contracts.Resources.AdapterSourceTypes.S3 => s3.DiscoverAsync(request, cancellationToken),
        Contracts.Resources.AdapterSourceTypes.HuggingFace => hub.DiscoverAsync(request, cancellationToken),
        Contracts.Resources.AdapterSourceTypes.Http => http.DiscoverAsync(request, cancellationToken),
        var other => Task.FromResult(DiscoveryResult.Unavailable(Contracts.Resources.LoraAdapterReasons.InvalidSpec,
            $"spec.adapterSource.type: Unsupported value \"{other}\": supported values: {string.Join(", ", Contracts.Resources.AdapterSourceTypes.All.Select(t => $"\"{t}\""))}.")),
    };
}
