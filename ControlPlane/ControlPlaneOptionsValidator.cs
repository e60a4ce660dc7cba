using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane;

/// <summary>Fails start-up with a message naming the configuration key, rather than misbehaving later.</summary>
internal sealed class ControlPlaneOptionsValidator : IValidateOptions<ControlPlaneOptions>
{
    public ValidateOptionsResult Validate(string? name, ControlPlaneOptions o)
    {
        var errors = new List<string>();
        if (!string.Equals(o.Home, "Local", StringComparison.OrdinalIgnoreCase) && !string.Equals(o.Home, "Kubernetes", StringComparison.OrdinalIgnoreCase))
            errors.Add($"ControlPlane:Home '{o.Home}' is not supported; use 'Local' (YAML folder + configured engines) or 'Kubernetes'.");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < o.Engines.Count; i++)
        {
            var e = o.Engines[i];
            var key = $"ControlPlane:Engines:{i}";
            if (string.IsNullOrWhiteSpace(e.Name)) errors.Add($"{key}:Name is required.");
            else if (!names.Add(e.Name)) errors.Add($"{key}:Name '{e.Name}' is used by another engine.");
            if (!Uri.TryCreate(e.SidecarUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                errors.Add($"{key}:SidecarUrl '{e.SidecarUrl}' must be an absolute http:// (h2c) or https:// URL of the sidecar's gRPC endpoint.");
        }
        if (o.ResyncInterval <= TimeSpan.Zero) errors.Add("ControlPlane:ResyncInterval must be positive.");
        if (o.BackoffInitial <= TimeSpan.Zero || o.BackoffMax < o.BackoffInitial) errors.Add("ControlPlane:BackoffInitial must be positive and not above ControlPlane:BackoffMax.");
        if (o.ReconnectInitial <= TimeSpan.Zero || o.ReconnectMax < o.ReconnectInitial) errors.Add("ControlPlane:ReconnectInitial must be positive and not above ControlPlane:ReconnectMax.");
        if (o.DemandWindow <= TimeSpan.Zero) errors.Add("ControlPlane:DemandWindow must be positive.");
        if (!(o.RatePerReplica > 0) || double.IsInfinity(o.RatePerReplica)) errors.Add($"ControlPlane:RatePerReplica '{o.RatePerReplica}' must be a positive number of requests per second.");
        if (o.Overflow.GrantTtl <= TimeSpan.Zero) errors.Add($"ControlPlane:Overflow:GrantTtl '{o.Overflow.GrantTtl}' must be positive.");
        if (o.Overflow.ExtraSlotsPerEngine < 0)
            errors.Add($"ControlPlane:Overflow:ExtraSlotsPerEngine {o.Overflow.ExtraSlotsPerEngine} must be >= 0 (0 = overflow loads use free host slots only).");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
