using System.Globalization;
using HybridServing.Contracts.Resources;
using k8s;

namespace HybridServing.ControlPlane.Homes;

/// <summary>
/// The local home's copy of every LoraAdapter with its latest status, served by the Kubernetes-shaped
/// HTTP API. Readers get deep copies, so a reader can never observe (or cause) a half-written status.
/// </summary>
internal sealed class LoraAdapterStore
{
    private readonly Lock _gate = new();
    private Dictionary<string, (string Json, long Version)> _objects = new(StringComparer.Ordinal);
    private long _resourceVersion;

    public void ReplaceAll(IReadOnlyList<LoraAdapter> adapters)
    {
        lock (_gate)
        {
            var next = new Dictionary<string, (string, long)>(StringComparer.Ordinal);
            foreach (var a in adapters)
            {
                var key = $"{a.Metadata.NamespaceProperty ?? "default"}/{a.Metadata.Name}";
                a.Metadata.ResourceVersion = null;
                var json = KubernetesJson.Serialize(a);
                // resourceVersion moves only when the object (spec or status) really changed.
                next[key] = _objects.TryGetValue(key, out var old) && old.Json == json ? old : (json, ++_resourceVersion);
            }
            _objects = next;
        }
    }

    public long ResourceVersion { get { lock (_gate) return _resourceVersion; } }

    public LoraAdapter? Get(string ns, string name)
    {
        lock (_gate)
            return _objects.TryGetValue($"{ns}/{name}", out var o) ? Materialize(o) : null;
    }

    /// <summary>Every object in <paramref name="ns"/> (or in all namespaces when null), sorted by namespace and name.</summary>
    public IReadOnlyList<LoraAdapter> List(string? ns)
    {
        lock (_gate)
            return [.. _objects.Where(kv => ns is null || kv.Key.StartsWith(ns + "/", StringComparison.Ordinal))
                .OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => Materialize(kv.Value))];
    }

    private static LoraAdapter Materialize((string Json, long Version) o)
    {
        var a = KubernetesJson.Deserialize<LoraAdapter>(o.Json);
        a.Metadata.ResourceVersion = o.Version.ToString(CultureInfo.InvariantCulture);
        return a;
    }
}
