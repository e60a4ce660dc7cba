using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace HybridServing.Gateway.Demand;

/// <summary>
/// Requests per adapter since the last demand report. Counting is on the request path, so it is one
/// dictionary look-up and one interlocked add: the box is created once per adapter and reused.
/// </summary>
internal sealed class DemandCounter
{
    private readonly ConcurrentDictionary<string, StrongBox<long>> _counts = new(StringComparer.Ordinal);

    public void Count(string adapter)
    {
        var box = _counts.GetOrAdd(adapter, static _ => new StrongBox<long>());
        Interlocked.Increment(ref box.Value);
    }

    /// <summary>Takes the counts so far and starts again from zero; adapters with no requests are left out.</summary>
    public List<(string Adapter, long Requests)> Drain()
    {
        var taken = new List<(string, long)>();
        foreach (var (adapter, box) in _counts)
        {
            var n = Interlocked.Exchange(ref box.Value, 0);
            if (n > 0) taken.Add((adapter, n));
        }
        return taken;
    }
}
