using HybridServing.Autoscaler.Decisions;
using HybridServing.Autoscaler.Signals;

namespace HybridServing.Autoscaler;

/// <summary>How a pool's engine count is changed.</summary>
public enum ActuatorKind
{
    /// <summary>Laptop / fast standby: a fixed set of engines; those above the desired count sleep (vLLM sleep mode).</summary>
    Sleep,
    /// <summary>Kubernetes: the pool's Deployment through its <c>scale</c> subresource.</summary>
    Deployment,
}

/// <summary>The <c>Autoscaler</c> configuration section (keys in Autoscaler/README.md).</summary>
public sealed class AutoscalerOptions
{
    public const string Section = "Autoscaler";

    /// <summary>How often every pool is observed and decided.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>Per-request timeout for every signal source and actuator call.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(2);
    /// <summary>The ControlPlane's HTTP root (its <c>/v1/status</c> gives LoRA shortfalls). Optional.</summary>
    public Uri? ControlPlaneUrl { get; set; }
    /// <summary>Gateways whose <c>/metrics</c> give held requests and refused overflows. Optional.</summary>
    public List<Uri> GatewayUrls { get; set; } = [];
    /// <summary>Read the engines' and gateways' signals from Prometheus (PromQL) instead of their <c>/metrics</c>.</summary>
    public PrometheusOptions Prometheus { get; set; } = new();
    /// <summary>The API server for Deployment pools.</summary>
    public KubernetesOptions Kubernetes { get; set; } = new();
    public Dictionary<string, PoolOptions> Pools { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>The <c>Autoscaler:Kubernetes</c> section.</summary>
public sealed class KubernetesOptions
{
    /// <summary>Optional API server URL for the Deployment actuator; otherwise in-cluster config, then kubeconfig.</summary>
    public string? ApiServerUrl { get; set; }
}

/// <summary><c>Autoscaler:Pools:&lt;name&gt;</c>: one engine pool.</summary>
public sealed class PoolOptions
{
    public int MinEngines { get; set; }
    public int MaxEngines { get; set; } = 1;
    public double TargetConcurrencyPerEngine { get; set; } = 8;
    public TimeSpan StableWindow { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan PanicWindow { get; set; } = TimeSpan.FromSeconds(6);
    public double PanicThreshold { get; set; } = 2.0;
    public double MaxScaleUpRate { get; set; } = 2.0;
    public double MaxScaleDownRate { get; set; } = 2.0;
    public TimeSpan ScaleDownDelay { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan ScaleDownStabilization { get; set; } = TimeSpan.FromSeconds(60);
    public TimeSpan ScaleToZeroGrace { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan MaxSignalAge { get; set; } = TimeSpan.FromSeconds(30);
    public bool LoraAware { get; set; } = true;
    /// <summary>With Prometheus: label matchers picking the pool's engine series (<c>$pool</c> in the queries); default <c>pool="&lt;name&gt;"</c>.</summary>
    public string? PrometheusSelector { get; set; }

    public static string DefaultPrometheusSelector(string pool) => $"pool=\"{pool}\"";

    public ActuatorKind Actuator { get; set; } = ActuatorKind.Sleep;
    /// <summary>Sleep actuator: the pool's engines (their vLLM HTTP roots), woken in this order and put to sleep in reverse.</summary>
    public List<Uri> Engines { get; set; } = [];
    /// <summary>Sleep actuator: vLLM sleep level, 1 (weights to host memory, fast wake) or 2 (weights discarded).</summary>
    public int SleepLevel { get; set; } = 1;
    /// <summary>Sleep actuator: the longest an engine may take to finish its in-flight requests before it sleeps.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(60);
    /// <summary>Deployment actuator: the engine pool's Deployment.</summary>
    public string? DeploymentNamespace { get; set; }
    public string? DeploymentName { get; set; }
    /// <summary>Deployment actuator: labels selecting the pool's engines among the ControlPlane's (<c>/v1/status</c>), for their metrics.</summary>
    public Dictionary<string, string> EngineSelector { get; set; } = new(StringComparer.Ordinal);

    public PoolPolicy ToPolicy(string pool) => new()
    {
        Pool = pool,
        MinEngines = MinEngines,
        MaxEngines = MaxEngines,
        TargetConcurrencyPerEngine = TargetConcurrencyPerEngine,
        StableWindow = StableWindow,
        PanicWindow = PanicWindow,
        PanicThreshold = PanicThreshold,
        MaxScaleUpRate = MaxScaleUpRate,
        MaxScaleDownRate = MaxScaleDownRate,
        ScaleDownDelay = ScaleDownDelay,
        ScaleDownStabilization = ScaleDownStabilization,
        ScaleToZeroGrace = ScaleToZeroGrace,
        MaxSignalAge = MaxSignalAge,
        LoraAware = LoraAware,
    };
}
