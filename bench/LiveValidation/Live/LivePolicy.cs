using System.Text;
using HybridServing.ClusterSimulator.Configuration;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.LiveValidation.Configuration;

namespace HybridServing.LiveValidation.Live;

/// <summary>
/// How the live product expresses one of the simulator's policies, with product knobs only:
/// LoraAdapter manifests (placement), <c>Gateway:Picking:Policy</c> (routing), whether the gateway
/// reports demand, and the host-memory capacity each sidecar reports to the control plane.
/// </summary>
internal sealed record LivePolicy(
    string Name,
    string Picker,
    bool ReportsDemand,
    int ReportedMaxCpuLoras,
    int ReplicasPerAdapter,
    IReadOnlyDictionary<string, string> Manifests,
    bool Overflow = false)
{
    /// <summary>Label the control plane gives engine i (<c>engine: engine-i</c>), for B2's pinned manifests.</summary>
    public const string EngineLabel = "engine";

    /// <summary>
    /// B0 and B1 register every adapter on every engine, as GIE's documented setup does (vLLM holds any
    /// number of registered adapters; its host cache of <c>max_cpu_loras</c> is an LRU over them, re-read
    /// from disk after eviction). The control plane places at most what a sidecar reports as host
    /// capacity, so for these two the sidecars report room for every adapter; the engines keep their
    /// real <c>--max-cpu-loras</c>. B0's simulator twin registers on first use instead of up front:
    /// after the warm-up both hold the same adapters (noted in the README).
    /// B2 pins each adapter to one engine exactly as the simulator's AIBrix-style policy does (adapter i
    /// on engine i mod M: "the engine with the fewest adapters" in creation order), through one manifest
    /// per engine with a podSelector. HybridServing is the product as shipped: replicas all, demand
    /// reports, the hybrid picker with overflow loads; HybridServing-no-overflow the same with
    /// <c>Gateway:Picking:Overflow:Enabled=false</c>, which takes the live control path (not
    /// time-compressed) off the request path.
    /// </summary>
    public static LivePolicy For(string policy, ValidationOptions o, AdapterCatalog catalog, string adapterRoot) => policy switch
    {
        PolicyNames.B0 => new(policy, "round-robin", false, Math.Max(o.MaxCpuLoras, catalog.Count), o.Engines, Everywhere(adapterRoot)),
        PolicyNames.B1 => new(policy, "lora-affinity", false, Math.Max(o.MaxCpuLoras, catalog.Count), o.Engines, Everywhere(adapterRoot)),
        PolicyNames.B2 => new(policy, "least-request", false, o.MaxCpuLoras, 1, PinnedRoundRobin(o.Engines, catalog, adapterRoot)),
        PolicyNames.HybridServing => new(policy, "hybrid", true, o.MaxCpuLoras, 1, Everywhere(adapterRoot), Overflow: true),
        PolicyNames.HybridServingNoOverflow => new(policy, "hybrid", true, o.MaxCpuLoras, 1, Everywhere(adapterRoot)),
        _ => throw new ArgumentException($"The live stack cannot express policy '{policy}'.", nameof(policy)),
    };

    private static Dictionary<string, string> Everywhere(string adapterRoot) => new()
    {
        ["adapters.yaml"] = Manifest("adapters", adapterRoot, "    pattern: \"lora-*\"\n", selector: null, "      all: true\n"),
    };

    private static Dictionary<string, string> PinnedRoundRobin(int engines, AdapterCatalog catalog, string adapterRoot)
    {
        var manifests = new Dictionary<string, string>();
        for (var e = 0; e < engines; e++)
        {
            var names = catalog.Adapters.Where(a => a.Index % engines == e).Select(a => a.Name).ToList();
            if (names.Count == 0) continue;
            var list = new StringBuilder("    adapters:\n");
            foreach (var n in names) list.Append("      - ").Append(n).Append('\n');
            manifests[$"engine-{e}.yaml"] = Manifest($"on-engine-{e}", adapterRoot, list.ToString(), $"engine-{e}", "      min: 1\n      max: 1\n");
        }
        return manifests;
    }

    private static string Manifest(string name, string adapterRoot, string filter, string? selector, string replicas)
    {
        var podSelector = selector is null ? "" : $"    podSelector:\n      matchLabels:\n        {EngineLabel}: {selector}\n";
        return $"""
            apiVersion: hybridserving.io/v1alpha1
            kind: LoraAdapter
            metadata:
              name: {name}
              namespace: default
            spec:
              baseModel: {AdapterCatalog.BaseModel}
              adapterSource:
                type: local
                repository: {adapterRoot}

            """ + filter + "  deploymentConfig:\n    loadOnStartup: true\n" + podSelector + "    replicas:\n" + replicas;
    }
}
