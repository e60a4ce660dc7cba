using System.Text;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Routing;

/// <summary>
/// Aliases and weighted versions (canaries) from <c>Gateway:Aliases:&lt;alias&gt;:&lt;target&gt;=&lt;weight&gt;</c>.
/// The target is chosen by hashing a sticky key (session, user or tenant) into the cumulative
/// weights, so one user stays on one version while the weights stay put, and a ramp from 10% to
/// 20% moves only the users in the added slice.
/// </summary>
internal sealed class ModelAliases
{
    private readonly Dictionary<string, (string Target, double Weight)[]> _aliases = new(StringComparer.Ordinal);

    public ModelAliases(IOptions<GatewayOptions> options)
    {
        foreach (var (alias, targets) in options.Value.Aliases)
        {
            if (targets.Count == 0) throw new InvalidOperationException($"Gateway:Aliases:{alias} lists no targets.");
            foreach (var (target, weight) in targets)
            {
                if (!double.IsFinite(weight) || weight <= 0)
                    throw new InvalidOperationException($"Gateway:Aliases:{alias}:{target} has weight {weight}; weights must be > 0.");
                if (target == alias) throw new InvalidOperationException($"Gateway:Aliases:{alias} points at itself.");
                if (options.Value.Aliases.ContainsKey(target))
                    throw new InvalidOperationException($"Gateway:Aliases:{alias}:{target} names another alias; aliases point at models, not aliases.");
            }
            // Ordinal order, so the slices do not depend on configuration provider order.
            _aliases[alias] = [.. targets.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => (t.Key, t.Value))];
        }
    }

    public IEnumerable<string> Names => _aliases.Keys;

    public bool IsAlias(string model) => _aliases.ContainsKey(model);

    public IReadOnlyList<string> TargetsOf(string alias) => _aliases.TryGetValue(alias, out var t) ? [.. t.Select(x => x.Target)] : [];

    /// <summary>The target for <paramref name="stickyKey"/>; null when <paramref name="model"/> is no alias.</summary>
    public string? Choose(string model, string stickyKey)
    {
        if (!_aliases.TryGetValue(model, out var targets)) return null;
        if (targets.Length == 1) return targets[0].Target;
        var total = targets.Sum(t => t.Weight);
        var point = Unit(Fnv1a(model + "\0" + stickyKey)) * total;
        foreach (var (target, weight) in targets)
        {
            if (point < weight) return target;
            point -= weight;
        }
        return targets[^1].Target;
    }

    private static double Unit(ulong hash) => (hash >> 11) * (1.0 / (1UL << 53));

    /// <summary>FNV-1a 64 with a final avalanche: stable across processes (string.GetHashCode is not).</summary>
    private static ulong Fnv1a(string s)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(s))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdUL;
        hash ^= hash >> 33;
        return hash;
    }
}
