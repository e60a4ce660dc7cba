using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using HybridServing.Autoscaler.Decisions;

namespace HybridServing.Autoscaler.Recording;

/// <summary>The last decision of a pool and what acting on it did.</summary>
public sealed record PoolStatus(ScaleDecision Decision, string Action, string? ActionError, string? ActionReason);

/// <summary>A pass that did something (woke, slept, scaled, started or abandoned a drain, failed): what <c>/v1/status</c> keeps of the past.</summary>
public sealed record PoolAction(DateTimeOffset At, int Current, int Desired, string Reason, string Action, string? Error);

/// <summary>
/// Records every decision with its inputs: a structured log line, the
/// <c>hybridserving_autoscaler_desired_engines{pool}</c> gauge (and current engines), and the latest
/// per pool for <c>/v1/status</c>. Kubernetes Events are written by <see cref="KubernetesEvents"/>.
/// </summary>
internal sealed partial class DecisionRecorder
{
    public const string MeterName = "HybridServing.Autoscaler";

    /// <summary>The action of a pass that found nothing to do.</summary>
    public const string NoChange = "no change";

    /// <summary>How many of a pool's past actions <see cref="Recent"/> keeps.</summary>
    public const int RecentActions = 20;

    private readonly ConcurrentDictionary<string, PoolStatus> _latest = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Queue<PoolAction>> _recent = new(StringComparer.Ordinal);
    private readonly ILogger<DecisionRecorder> _logger;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (int, int, ScaleMode, string, string)> _lastLogged = new();

    public DecisionRecorder(IMeterFactory meters, ILogger<DecisionRecorder> logger)
    {
        _logger = logger;
        var meter = meters.Create(MeterName);
        meter.CreateObservableGauge("desired_engines", () => Measure(s => s.Decision.Desired), "{engine}",
            "Engines the autoscaler wants in the pool.");
        meter.CreateObservableGauge("current_engines", () => Measure(s => s.Decision.Current), "{engine}",
            "Engines serving in the pool when the autoscaler last looked.");
    }

    public IReadOnlyDictionary<string, PoolStatus> Latest => _latest;

    /// <summary>The pool's last <see cref="RecentActions"/> passes that acted or failed, oldest first (steady passes and repeats are not kept).</summary>
    public IReadOnlyList<PoolAction> Recent(string pool)
    {
        if (!_recent.TryGetValue(pool, out var queue)) return [];
        lock (queue) return [.. queue];
    }

    public void Record(ScaleDecision d, string action, ActuationFailure? failure)
    {
        _latest[d.Pool] = new PoolStatus(d, action, failure?.Message, failure?.Reason);
        if (action != NoChange || failure is not null)
        {
            var queue = _recent.GetOrAdd(d.Pool, _ => new Queue<PoolAction>());
            lock (queue)
            {
                // A drain in progress says so every pass: kept once.
                var repeated = failure is null && queue.Count > 0 && queue.Last() is { Error: null } previous && previous.Action == action;
                if (!repeated) queue.Enqueue(new PoolAction(d.At, d.Current, d.Desired, d.Reason, action, failure?.Message));
                while (queue.Count > RecentActions) queue.Dequeue();
            }
        }
        var s = d.Signals;
        // A pass that changes nothing and decides what the last one did is the idle steady state: Debug, so an
        // idle stack's console stays quiet. Every other decision is logged at Information with its inputs.
        var key = (d.Current, d.Desired, d.Mode, d.Reason, action);
        var repeat = action == NoChange && _lastLogged.TryGetValue(d.Pool, out var last) && last == key;
        _lastLogged[d.Pool] = key;
        LogDecision(_logger, repeat ? LogLevel.Debug : LogLevel.Information, d.Pool, d.Current, d.Desired, d.Mode, d.Reason, d.Message, d.StableConcurrency, d.PanicConcurrency,
            s?.Running ?? 0, s?.Waiting ?? 0, s?.HeldRequests ?? 0, s?.MaxKvCacheUsage ?? 0, s?.Lora.SlotBound ?? false,
            s?.Lora.AdaptersShortOfReplicas ?? 0, s?.Lora.OverflowRefusals ?? 0, s?.Lora.SlotsOccupied ?? 0, s?.Lora.SlotsTotal ?? 0,
            s?.Lora.WaitingLoraRequests ?? 0, action);
        if (failure is not null) LogActuationFailed(_logger, d.Pool, failure.Reason, failure.Message);
    }

    private IEnumerable<Measurement<int>> Measure(Func<PoolStatus, int> value) =>
        _latest.Select(kv => new Measurement<int>(value(kv.Value), new KeyValuePair<string, object?>("pool", kv.Key)));

    [LoggerMessage(EventId = 1,
        Message = "Pool {Pool}: {Current} → {Desired} engines ({Mode}, {Reason}: {Message}); stable {Stable:0.##} panic {Panic:0.##}; running {Running} waiting {Waiting} held {Held} kv {Kv:0.##}; slot-bound {SlotBound} (short {ShortOfReplicas}, refused {Refusals}, slots {SlotsOccupied}/{SlotsTotal}, waiting adapters {WaitingAdapters}); action: {Action}")]
    private static partial void LogDecision(ILogger logger, LogLevel level, string pool, int current, int desired, ScaleMode mode, string reason, string message,
        double stable, double panic, double running, double waiting, double held, double kv, bool slotBound,
        int shortOfReplicas, long refusals, int slotsOccupied, int slotsTotal, int waitingAdapters, string action);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Pool {Pool}: acting failed ({Reason}): {Message}")]
    private static partial void LogActuationFailed(ILogger logger, string pool, string reason, string message);
}

/// <summary>Why acting on a decision failed (a Kubernetes-style reason and a message naming the object).</summary>
public sealed record ActuationFailure(string Reason, string Message);
