using HybridServing.Autoscaler.Signals;
using Microsoft.Extensions.Options;

namespace HybridServing.Autoscaler;

/// <summary>Refuses a configuration that cannot work, at start, naming the key.</summary>
internal sealed class AutoscalerOptionsValidator : IValidateOptions<AutoscalerOptions>
{
    public ValidateOptionsResult Validate(string? name, AutoscalerOptions o)
    {
        var errors = new List<string>();
        const string root = AutoscalerOptions.Section;
        if (o.Interval <= TimeSpan.Zero) errors.Add($"{root}:Interval must be positive (got {o.Interval}).");
        if (o.RequestTimeout <= TimeSpan.Zero) errors.Add($"{root}:RequestTimeout must be positive (got {o.RequestTimeout}).");
        if (o.ControlPlaneUrl is { IsAbsoluteUri: false }) errors.Add($"{root}:ControlPlaneUrl must be an absolute URL (got '{o.ControlPlaneUrl}').");
        for (var i = 0; i < o.GatewayUrls.Count; i++)
            if (!o.GatewayUrls[i].IsAbsoluteUri) errors.Add($"{root}:GatewayUrls:{i} must be an absolute URL (got '{o.GatewayUrls[i]}').");
        ValidatePrometheus(o, errors);
        if (o.Pools.Count == 0) errors.Add($"{root}:Pools must name at least one pool.");
        foreach (var (pool, p) in o.Pools)
        {
            var key = $"{root}:Pools:{pool}";
            if (p.MinEngines < 0) errors.Add($"{key}:MinEngines must be 0 or more (got {p.MinEngines}).");
            if (p.MaxEngines < 1) errors.Add($"{key}:MaxEngines must be at least 1 (got {p.MaxEngines}).");
            if (p.MinEngines > p.MaxEngines) errors.Add($"{key}:MinEngines ({p.MinEngines}) must not exceed MaxEngines ({p.MaxEngines}).");
            if (!(p.TargetConcurrencyPerEngine > 0)) errors.Add($"{key}:TargetConcurrencyPerEngine must be positive (got {p.TargetConcurrencyPerEngine}).");
            if (p.PanicWindow <= TimeSpan.Zero || p.PanicWindow > p.StableWindow)
                errors.Add($"{key}:PanicWindow must be positive and no longer than StableWindow (got {p.PanicWindow} and {p.StableWindow}).");
            if (!(p.PanicThreshold > 1)) errors.Add($"{key}:PanicThreshold must be above 1 (got {p.PanicThreshold}).");
            if (!(p.MaxScaleUpRate > 1)) errors.Add($"{key}:MaxScaleUpRate must be above 1 (got {p.MaxScaleUpRate}).");
            if (!(p.MaxScaleDownRate > 1)) errors.Add($"{key}:MaxScaleDownRate must be above 1 (got {p.MaxScaleDownRate}).");
            foreach (var (field, value) in new[] { ("ScaleDownDelay", p.ScaleDownDelay), ("ScaleDownStabilization", p.ScaleDownStabilization), ("ScaleToZeroGrace", p.ScaleToZeroGrace) })
                if (value < TimeSpan.Zero) errors.Add($"{key}:{field} must not be negative (got {value}).");
            if (p.PrometheusSelector is { } selector && !IsSelector(selector))
                errors.Add($"{key}:PrometheusSelector must be label matchers without braces, e.g. pool=\"{pool}\" (got '{selector}').");
            if (p.MaxSignalAge <= TimeSpan.Zero) errors.Add($"{key}:MaxSignalAge must be positive (got {p.MaxSignalAge}).");
            switch (p.Actuator)
            {
                case ActuatorKind.Sleep:
                    if (p.Engines.Count == 0) errors.Add($"{key}:Engines must list the pool's engines for the Sleep actuator.");
                    for (var i = 0; i < p.Engines.Count; i++)
                        if (!p.Engines[i].IsAbsoluteUri) errors.Add($"{key}:Engines:{i} must be an absolute URL (got '{p.Engines[i]}').");
                    if (p.Engines.Count > 0 && p.MaxEngines > p.Engines.Count)
                        errors.Add($"{key}:MaxEngines ({p.MaxEngines}) exceeds the {p.Engines.Count} engines listed in Engines.");
                    if (p.SleepLevel is not (1 or 2)) errors.Add($"{key}:SleepLevel must be 1 or 2 (got {p.SleepLevel}).");
                    if (p.DrainTimeout <= TimeSpan.Zero) errors.Add($"{key}:DrainTimeout must be positive (got {p.DrainTimeout}).");
                    break;
                case ActuatorKind.Deployment:
                    if (string.IsNullOrWhiteSpace(p.DeploymentName)) errors.Add($"{key}:DeploymentName is required for the Deployment actuator.");
                    if (string.IsNullOrWhiteSpace(p.DeploymentNamespace)) errors.Add($"{key}:DeploymentNamespace is required for the Deployment actuator.");
                    if (o.ControlPlaneUrl is null && o.Prometheus.Url is null) errors.Add($"{root}:ControlPlaneUrl is required for pool '{pool}': the Deployment actuator finds the pool's engines in its /v1/status.");
                    if (p.EngineSelector.Count == 0 && o.Prometheus.Url is null) errors.Add($"{key}:EngineSelector must name at least one label for the Deployment actuator.");
                    break;
                default:
                    errors.Add($"{key}:Actuator must be Sleep or Deployment (got {p.Actuator}).");
                    break;
            }
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidatePrometheus(AutoscalerOptions o, List<string> errors)
    {
        const string key = AutoscalerOptions.Section + ":Prometheus";
        var p = o.Prometheus;
        if (p.Url is null) return;
        if (!p.Url.IsAbsoluteUri || p.Url.Scheme is not ("http" or "https"))
            errors.Add($"{key}:Url must be an absolute http(s) URL (got '{p.Url}').");
        if (o.GatewayUrls.Count > 0)
            errors.Add($"{AutoscalerOptions.Section}:GatewayUrls must be empty when {key}:Url is set: the gateways' signals come from Prometheus then.");
        if (!IsSelector(p.GatewaySelector))
            errors.Add($"{key}:GatewaySelector must be label matchers without braces, e.g. job=\"gateway\" (got '{p.GatewaySelector}').");
        foreach (var (name, query) in new[]
                 {
                     (nameof(PrometheusQueries.EnginesUp), p.Queries.EnginesUp), (nameof(PrometheusQueries.Running), p.Queries.Running),
                     (nameof(PrometheusQueries.Waiting), p.Queries.Waiting), (nameof(PrometheusQueries.KvCacheUsage), p.Queries.KvCacheUsage),
                     (nameof(PrometheusQueries.LoraInfo), p.Queries.LoraInfo), (nameof(PrometheusQueries.GatewaysUp), p.Queries.GatewaysUp),
                     (nameof(PrometheusQueries.HeldRequests), p.Queries.HeldRequests), (nameof(PrometheusQueries.OverflowRefusals), p.Queries.OverflowRefusals),
                 })
            if (string.IsNullOrWhiteSpace(query)) errors.Add($"{key}:Queries:{name} must be a PromQL query.");
    }

    /// <summary>Label matchers go inside a selector's braces: they must not bring their own.</summary>
    private static bool IsSelector(string? value) => !string.IsNullOrWhiteSpace(value) && value.IndexOfAny(['{', '}']) < 0;
}
