using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>Checks <c>ControlPlane:Kubernetes</c> at start-up, naming the key and what to do.</summary>
internal sealed partial class KubernetesHomeOptionsValidator : IValidateOptions<KubernetesHomeOptions>
{
    // key, optional prefix "example.com/"; values and names as Kubernetes allows them.
    private const string Key = @"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?";
    private const string Value = @"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?";

    [GeneratedRegex("^!?" + Key + "$")]
    private static partial Regex Exists();

    [GeneratedRegex("^" + Key + @"\s*(=|==|!=)\s*" + Value + "$")]
    private static partial Regex Equality();

    [GeneratedRegex("^" + Key + @"\s+(in|notin)\s+\(\s*" + Value + @"(\s*,\s*" + Value + @")*\s*\)$")]
    private static partial Regex Set();

    public ValidateOptionsResult Validate(string? name, KubernetesHomeOptions o)
    {
        var errors = new List<string>();
        const string s = KubernetesHomeOptions.Section;
        if (LabelSelectorError(o.EngineSelector) is { } selectorError)
            errors.Add($"{s}:EngineSelector '{o.EngineSelector}' is not a label selector: {selectorError} (example: hybridserving.io/role=engine).");
        if (string.IsNullOrWhiteSpace(o.SidecarGrpcPortAnnotation))
            errors.Add($"{s}:SidecarGrpcPortAnnotation must name a pod annotation (default hybridserving.io/sidecar-grpc-port).");
        if (o.DefaultSidecarGrpcPort is < 1 or > 65535)
            errors.Add($"{s}:DefaultSidecarGrpcPort must be a port number (1-65535), not {o.DefaultSidecarGrpcPort}.");
        if (o.ApiServerUrl is { Length: > 0 } url && (!Uri.TryCreate(url, UriKind.Absolute, out var u) || u.Scheme is not ("http" or "https")))
            errors.Add($"{s}:ApiServerUrl '{url}' must be an absolute http(s) URL, or empty for in-cluster/kubeconfig.");
        if (o.LeaderElection)
        {
            if (string.IsNullOrWhiteSpace(o.LeaseName)) errors.Add($"{s}:LeaseName must be set when leader election is on.");
            if (o.LeaseDuration < TimeSpan.FromSeconds(1)) errors.Add($"{s}:LeaseDuration must be at least 1 s (the Lease holds whole seconds), not {o.LeaseDuration}.");
            if (o.RenewDeadline <= TimeSpan.Zero || o.RenewDeadline >= o.LeaseDuration)
                errors.Add($"{s}:RenewDeadline ({o.RenewDeadline}) must be positive and shorter than LeaseDuration ({o.LeaseDuration}).");
            if (o.RetryPeriod <= TimeSpan.Zero || o.RetryPeriod >= o.RenewDeadline)
                errors.Add($"{s}:RetryPeriod ({o.RetryPeriod}) must be positive and shorter than RenewDeadline ({o.RenewDeadline}).");
        }
        if (o.ListPageSize < 1) errors.Add($"{s}:ListPageSize must be at least 1, not {o.ListPageSize}.");
        Positive(errors, "WatchTimeout", o.WatchTimeout, TimeSpan.FromSeconds(1));
        Positive(errors, "WatchdogTimeout", o.WatchdogTimeout, TimeSpan.Zero);
        Positive(errors, "ResyncInterval", o.ResyncInterval, TimeSpan.Zero);
        Positive(errors, "BackoffInitial", o.BackoffInitial, TimeSpan.Zero);
        if (o.BackoffMax < o.BackoffInitial) errors.Add($"{s}:BackoffMax ({o.BackoffMax}) must not be shorter than BackoffInitial ({o.BackoffInitial}).");
        if (!(o.MutationsPerSecond > 0)) errors.Add($"{s}:MutationsPerSecond must be positive, not {o.MutationsPerSecond}.");
        if (o.MutationBurst < 1) errors.Add($"{s}:MutationBurst must be at least 1, not {o.MutationBurst}.");
        if (o.EventInterval < TimeSpan.Zero) errors.Add($"{s}:EventInterval must not be negative.");
        if (o.EventQueueCapacity < 1) errors.Add($"{s}:EventQueueCapacity must be at least 1, not {o.EventQueueCapacity}.");
        if (o.StatusSettleTimeout < TimeSpan.Zero) errors.Add($"{s}:StatusSettleTimeout must not be negative.");
        if (o.AdapterServices && string.IsNullOrWhiteSpace(o.EnginePortAnnotation))
            errors.Add($"{s}:EnginePortAnnotation must name a pod annotation when AdapterServices is on (default hybridserving.io/engine-port).");
        if (o.DefaultEnginePort is < 1 or > 65535)
            errors.Add($"{s}:DefaultEnginePort must be a port number (1-65535), not {o.DefaultEnginePort}.");
        if (o.SnapshotDebounce < TimeSpan.Zero) errors.Add($"{s}:SnapshotDebounce must not be negative.");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Positive(List<string> errors, string key, TimeSpan value, TimeSpan min)
    {
        if (value <= TimeSpan.Zero || value < min)
            errors.Add($"{KubernetesHomeOptions.Section}:{key} must be {(min > TimeSpan.Zero ? $"at least {min}" : "positive")}, not {value}.");
    }

    /// <summary>Null when <paramref name="selector"/> is a valid label selector, else what is wrong. Empty selects every pod and is refused.</summary>
    internal static string? LabelSelectorError(string? selector)
    {
        if (string.IsNullOrWhiteSpace(selector)) return "it is empty, which would make every pod an engine";
        var depth = 0;
        var start = 0;
        var terms = new List<string>();
        for (var i = 0; i < selector.Length; i++)
        {
            var c = selector[i];
            if (c == '(') depth++;
            else if (c == ')' && --depth < 0) return "a ')' has no matching '('";
            else if (c == ',' && depth == 0)
            {
                terms.Add(selector[start..i]);
                start = i + 1;
            }
        }
        if (depth != 0) return "a '(' is not closed";
        terms.Add(selector[start..]);
        foreach (var raw in terms)
        {
            var term = raw.Trim();
            if (term.Length == 0) return "it has an empty requirement (two commas in a row, or a trailing comma)";
            if (!Exists().IsMatch(term) && !Equality().IsMatch(term) && !Set().IsMatch(term)) return $"'{term}' is not a requirement (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))";
        }
        return null;
    }
}
