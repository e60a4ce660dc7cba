using System.Collections.Concurrent;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Gateway.Load;

/// <summary>An engine's scraped load and when it was read.</summary>
internal sealed record ScrapedLoad(EngineLoadSnapshot Load, DateTimeOffset At);

/// <summary>
/// Live load per engine: what the scraper last read from <c>/metrics</c>, plus the gateway's own
/// in-flight count, which moves at once (a scrape lags by up to one interval).
/// </summary>
internal sealed class EngineLoadBoard
{
    private readonly ConcurrentDictionary<string, ScrapedLoad> _scraped = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, StrongBox<int>> _inFlight = new(StringComparer.Ordinal);

    public void Record(string engine, ScrapedLoad load) => _scraped[engine] = load;

    public ScrapedLoad? Scraped(string engine) => _scraped.TryGetValue(engine, out var l) ? l : null;

    public int InFlight(string engine) => _inFlight.TryGetValue(engine, out var box) ? Volatile.Read(ref box.Value) : 0;

    /// <summary>Counts one request as in flight on <paramref name="engine"/> until the returned scope is disposed.</summary>
    public InFlightScope Begin(string engine)
    {
        var box = _inFlight.GetOrAdd(engine, static _ => new StrongBox<int>());
        Interlocked.Increment(ref box.Value);
        return new InFlightScope(box);
    }

    /// <summary>Drops readings of engines that left the routing table.</summary>
    public void RetainOnly(Func<string, bool> stillThere)
    {
        foreach (var e in _scraped.Keys)
            if (!stillThere(e)) _scraped.TryRemove(e, out _);
    }

    internal sealed class StrongBox<T> where T : struct
    {
        public T Value;
    }

    internal struct InFlightScope(StrongBox<int> box) : IDisposable
    {
        private StrongBox<int>? _box = box;

        public void Dispose()
        {
            if (_box is null) return;
            Interlocked.Decrement(ref _box.Value);
            _box = null;
        }
    }
}
