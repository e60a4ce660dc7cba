using HybridServing.Autoscaler.Actuation;
using HybridServing.Autoscaler.Recording;
using HybridServing.Autoscaler.Signals;
using k8s;
using Microsoft.Extensions.Options;

namespace HybridServing.Autoscaler;

/// <summary>Composition root: <c>builder.AddAutoscaler()</c>, <c>app.MapAutoscaler()</c>.</summary>
public static class AutoscalerExtensions
{
    public static WebApplicationBuilder AddAutoscaler(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AutoscalerOptions>().Bind(builder.Configuration.GetSection(AutoscalerOptions.Section)).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AutoscalerOptions>, AutoscalerOptionsValidator>();
        // A key that binds to nothing (a typo such as StableWindw) fails the start naming it instead of being ignored.
        services.AddSingleton<IValidateOptions<AutoscalerOptions>>(new UnknownKeysValidator(builder.Configuration));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(sp => new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1) })
        {
            Timeout = sp.GetRequiredService<IOptions<AutoscalerOptions>>().Value.RequestTimeout,
        });
        services.AddSingleton(sp => new SignalSources(sp.GetRequiredService<HttpClient>()));
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<AutoscalerOptions>>().Value;
            return new PoolSignalCollector(sp.GetRequiredService<SignalSources>(),
                o.Prometheus.Url is null ? null : new PrometheusSource(sp.GetRequiredService<HttpClient>(), o.Prometheus),
                sp.GetRequiredService<TimeProvider>());
        });
        services.AddSingleton<DecisionRecorder>();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<AutoscalerOptions>>().Value;
            var apiServer = o.Kubernetes.ApiServerUrl;
            if (!o.Pools.Values.Any(p => p.Actuator == ActuatorKind.Deployment)) return new KubernetesHolder(null);
            var config = apiServer is { Length: > 0 } ? new KubernetesClientConfiguration { Host = apiServer }
                : KubernetesClientConfiguration.IsInCluster() ? KubernetesClientConfiguration.InClusterConfig()
                : KubernetesClientConfiguration.BuildConfigFromConfigFile();
            return new KubernetesHolder(new Kubernetes(config));
        });
        services.AddSingleton<IReadOnlyDictionary<string, IPoolActuator>>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<AutoscalerOptions>>().Value;
            // Waking and draining take longer than a metrics read: the actuator's client has no short timeout.
            var actuation = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(1) }) { Timeout = TimeSpan.FromMinutes(5) };
            var kube = sp.GetRequiredService<KubernetesHolder>().Client;
            var time = sp.GetRequiredService<TimeProvider>();
            return o.Pools.ToDictionary(p => p.Key, p => p.Value.Actuator == ActuatorKind.Deployment
                ? (IPoolActuator)new DeploymentScaleActuator(p.Key, p.Value, kube!)
                : new SleepActuator(p.Value, actuation, time, o.ControlPlaneUrl), StringComparer.Ordinal);
        });
        services.AddSingleton(sp => sp.GetRequiredService<KubernetesHolder>().Client is { } k
            ? new KubernetesEvents(k, sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<KubernetesEvents>>())
            : null!);
        services.AddSingleton(sp => new AutoscalerLoop(
            sp.GetRequiredService<IOptions<AutoscalerOptions>>(), sp.GetRequiredService<PoolSignalCollector>(),
            sp.GetRequiredService<IReadOnlyDictionary<string, IPoolActuator>>(), sp.GetRequiredService<DecisionRecorder>(),
            sp.GetService<KubernetesEvents>(), sp.GetRequiredService<TimeProvider>()));
        services.AddHostedService(sp => sp.GetRequiredService<AutoscalerLoop>());
        return builder;
    }

    /// <summary>Maps <c>GET /v1/status</c>: every pool's last decision, its inputs and what acting on it did.</summary>
    public static WebApplication MapAutoscaler(this WebApplication app)
    {
        app.MapGet("/v1/status", (DecisionRecorder recorder, IOptions<AutoscalerOptions> options) => Results.Json(new
        {
            interval = options.Value.Interval,
            pools = recorder.Latest.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => new
            {
                pool = kv.Key,
                // The configuration in force (what Autoscaler:Pools:<pool>:* resolved to), next to what it decided.
                policy = options.Value.Pools.TryGetValue(kv.Key, out var p) ? new
                {
                    actuator = p.Actuator.ToString(),
                    minEngines = p.MinEngines,
                    maxEngines = p.MaxEngines,
                    targetConcurrencyPerEngine = p.TargetConcurrencyPerEngine,
                    stableWindow = p.StableWindow,
                    panicWindow = p.PanicWindow,
                    scaleDownDelay = p.ScaleDownDelay,
                    scaleDownStabilization = p.ScaleDownStabilization,
                    scaleToZeroGrace = p.ScaleToZeroGrace,
                    drainTimeout = p.DrainTimeout,
                    engines = p.Engines,
                } : null,
                current = kv.Value.Decision.Current,
                desired = kv.Value.Decision.Desired,
                mode = kv.Value.Decision.Mode.ToString(),
                reason = kv.Value.Decision.Reason,
                message = kv.Value.Decision.Message,
                at = kv.Value.Decision.At,
                stableConcurrency = kv.Value.Decision.StableConcurrency,
                panicConcurrency = kv.Value.Decision.PanicConcurrency,
                signals = kv.Value.Decision.Signals,
                action = kv.Value.Action,
                actionError = kv.Value.ActionError is null ? null : new { reason = kv.Value.ActionReason, message = kv.Value.ActionError },
                recent = recorder.Recent(kv.Key).Select(a => new { at = a.At, current = a.Current, desired = a.Desired, reason = a.Reason, action = a.Action, error = a.Error }),
            }),
        }));
        return app;
    }

    private sealed record KubernetesHolder(IKubernetes? Client);
}
