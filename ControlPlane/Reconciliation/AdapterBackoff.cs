using HybridServing.ControlPlane.Engines;

namespace HybridServing.ControlPlane.Reconciliation;

/// <summary>A failing (adapter, engine) pair: how often it failed, why, and when it may be tried again.</summary>
internal sealed record BackoffEntry(string Adapter, string Engine, int Failures, string Reason, string Message, DateTimeOffset NextRetry,
    string? Source = null)
{
    /// <summary>A refusal retrying cannot fix: the engine stays excluded until the adapter's source changes.</summary>
    public bool Permanent => NextRetry == DateTimeOffset.MaxValue;
}

/// <summary>
/// Bounded exponential backoff per (adapter, engine). An attempt opens when the adapter is put in the
/// engine's desired set; a Failed report closes it as a failure (delay doubles, capped); a Loaded
/// report clears the pair. While backing off the engine is excluded for that adapter, so placement
/// tries another engine instead of hammering the failing one. A sidecar's non-retryable refusal
/// (<see cref="IsPermanent"/>: the same reasons the sidecar itself never retries) excludes the engine
/// until the adapter's source changes, and is shown as the adapter's failure at once.
/// </summary>
internal sealed class AdapterBackoff(TimeSpan initial, TimeSpan max)
{
    private readonly Dictionary<(string Adapter, string Engine), BackoffEntry> _entries = [];
    private readonly HashSet<(string Adapter, string Engine)> _open = [];

    /// <summary>Sidecar failure reasons that wait for a new spec (sidecar.proto): retrying repeats them.</summary>
    public static bool IsPermanent(string reason) => Contracts.Sidecar.PermanentFailures.Contains(reason);

    public void AttemptStarted(string adapter, string engine) => _open.Add((adapter, engine));

    /// <summary>Records a failure if an attempt was open; returns true when it was recorded.</summary>
    public bool Failed(string adapter, string engine, string reason, string message, DateTimeOffset now, string? source = null)
    {
        if (!_open.Remove((adapter, engine))) return false;
        var failures = _entries.TryGetValue((adapter, engine), out var e) ? e.Failures + 1 : 1;
        var next = IsPermanent(reason) ? DateTimeOffset.MaxValue : now + Backoff.Delay(initial, max, failures);
        _entries[(adapter, engine)] = new BackoffEntry(adapter, engine, failures, reason, message, next, source);
        return true;
    }

    /// <summary>Forgets permanent refusals of adapters whose source is no longer the one refused: a new spec is tried.</summary>
    public void ForgetChangedSources(IReadOnlyDictionary<string, string> sourceByAdapter)
    {
        foreach (var (key, entry) in _entries.Where(e => e.Value.Permanent).ToList())
            if (!sourceByAdapter.TryGetValue(key.Adapter, out var source) || source != entry.Source) _entries.Remove(key);
    }

    public void Succeeded(string adapter, string engine)
    {
        _open.Remove((adapter, engine));
        _entries.Remove((adapter, engine));
    }

    /// <summary>Engines the adapter must not be placed on now.</summary>
    public IReadOnlySet<string>? Excluded(string adapter, DateTimeOffset now)
    {
        HashSet<string>? result = null;
        foreach (var ((a, engine), entry) in _entries)
            if (a == adapter && entry.NextRetry > now) (result ??= new(StringComparer.Ordinal)).Add(engine);
        return result;
    }

    public IEnumerable<BackoffEntry> For(string adapter) => _entries.Values.Where(e => e.Adapter == adapter);

    public DateTimeOffset? NextDue(DateTimeOffset now) =>
        _entries.Values.Where(e => e.NextRetry > now).Select(e => (DateTimeOffset?)e.NextRetry).Min();

    /// <summary>Forgets adapters that are no longer declared (and engines no longer known).</summary>
    public void Retain(IReadOnlySet<string> adapters, IReadOnlySet<string> engines)
    {
        foreach (var key in _entries.Keys.Where(k => !adapters.Contains(k.Adapter) || !engines.Contains(k.Engine)).ToList()) _entries.Remove(key);
        _open.RemoveWhere(k => !adapters.Contains(k.Adapter) || !engines.Contains(k.Engine));
    }

    public bool IsOpen(string adapter, string engine) => _open.Contains((adapter, engine));
}
