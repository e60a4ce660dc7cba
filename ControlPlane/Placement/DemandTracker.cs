using HybridServing.Contracts.ControlPlane;

namespace HybridServing.ControlPlane.Placement;

/// <summary>
/// Observed request rates per adapter, from gateways' <c>ReportDemand</c> calls. Each (gateway, adapter)
/// keeps its samples for a sliding window; an adapter's rate is the sum over gateways of the requests
/// in the window divided by the window length. Gateways report deltas, so summing is correct however
/// many gateways there are and however often they report.
/// </summary>
internal sealed class DemandTracker(TimeProvider time, TimeSpan window, double ratePerReplica)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Gateway, string Adapter), Queue<(DateTimeOffset At, long Requests)>> _samples = [];
    // The replica count each adapter's rate asked for when last checked: only a change wakes placement.
    private readonly Dictionary<string, int> _replicas = new(StringComparer.Ordinal);

    public TimeSpan Window => window;

    /// <summary>Records one report; true when some adapter's rate now asks for a different number of replicas.</summary>
    public bool Record(DemandReport report)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            foreach (var sample in report.Adapters)
            {
                if (sample.Requests <= 0 || string.IsNullOrEmpty(sample.Name)) continue;
                var key = (report.Gateway, sample.Name);
                if (!_samples.TryGetValue(key, out var queue)) _samples[key] = queue = new();
                queue.Enqueue((now, sample.Requests));
            }
            return ReplicasChanged(now);
        }
    }

    /// <summary>Current rates (requests per second) of adapters with requests in the window; others are unknown.</summary>
    public IReadOnlyDictionary<string, double> Rates()
    {
        lock (_gate) return RatesLocked(time.GetUtcNow());
    }

    private Dictionary<string, double> RatesLocked(DateTimeOffset now)
    {
        var cutoff = now - window;
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        List<(string, string)>? empty = null;
        foreach (var (key, queue) in _samples)
        {
            while (queue.Count > 0 && queue.Peek().At <= cutoff) queue.Dequeue();
            if (queue.Count == 0) { (empty ??= []).Add(key); continue; }
            long sum = 0;
            foreach (var s in queue) sum += s.Requests;
            totals[key.Adapter] = totals.GetValueOrDefault(key.Adapter) + sum;
        }
        if (empty is not null) foreach (var key in empty) _samples.Remove(key);
        var seconds = window.TotalSeconds;
        return totals.ToDictionary(t => t.Key, t => t.Value / seconds, StringComparer.Ordinal);
    }

    private bool ReplicasChanged(DateTimeOffset now)
    {
        var rates = RatesLocked(now);
        var changed = false;
        foreach (var (adapter, rate) in rates)
        {
            var replicas = ratePerReplica > 0 ? (int)Math.Min(int.MaxValue, Math.Ceiling(rate / ratePerReplica)) : 0;
            if (!_replicas.TryGetValue(adapter, out var before) || before != replicas)
            {
                _replicas[adapter] = replicas;
                changed = true;
            }
        }
        foreach (var gone in _replicas.Keys.Where(a => !rates.ContainsKey(a)).ToList())
        {
            _replicas.Remove(gone);
            changed = true;
        }
        return changed;
    }
}
