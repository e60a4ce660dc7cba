using System.Globalization;
using System.Text.Json.Nodes;
using HybridServing.Contracts.Resources;

namespace HybridServing.ControlPlane.Kubernetes;

/// <summary>One Kubernetes event about a LoraAdapter.</summary>
internal sealed record AdapterEvent(string Namespace, string Name, string? Uid, string Type, string Reason, string Action, string Note);

/// <summary>
/// Kubernetes events (events.k8s.io/v1) for notable transitions, so <c>kubectl describe lora</c> tells
/// the story. Rate-limited twice: the same (object, reason, note) is recorded at most once per
/// interval, and events wait for the shared mutation budget in a bounded queue whose oldest entries
/// are dropped (events are best effort; status is the record).
/// </summary>
internal sealed partial class AdapterEvents(KubeApi api, KubernetesHomeOptions options, string identity, TimeProvider time, ILogger logger)
{
    public const string Controller = "hybridserving.io/controlplane";

    private readonly Lock _gate = new();
    private readonly Queue<AdapterEvent> _queue = new();
    private readonly Dictionary<string, DateTimeOffset> _lastRecorded = new(StringComparer.Ordinal);
    private long _dropped;
    private long _sent;

    public long Dropped => Interlocked.Read(ref _dropped);
    public long Sent => Interlocked.Read(ref _sent);

    public bool HasPending
    {
        get { lock (_gate) return _queue.Count > 0; }
    }

    /// <summary>Queues an event unless the same one was recorded within the interval.</summary>
    public bool Record(AdapterEvent e)
    {
        var now = time.GetUtcNow();
        var key = $"{e.Namespace}/{e.Name}/{e.Uid}/{e.Reason}/{e.Note}";
        lock (_gate)
        {
            if (_lastRecorded.TryGetValue(key, out var last) && now - last < options.EventInterval) return false;
            _lastRecorded[key] = now;
            if (_lastRecorded.Count > 4 * options.EventQueueCapacity)
                foreach (var old in _lastRecorded.Where(kv => now - kv.Value >= options.EventInterval).Select(kv => kv.Key).ToList())
                    _lastRecorded.Remove(old);
            _queue.Enqueue(e);
            while (_queue.Count > options.EventQueueCapacity)
            {
                _queue.Dequeue();
                Interlocked.Increment(ref _dropped);
            }
        }
        return true;
    }

    /// <summary>Sends queued events while the budget allows (never waits for tokens: status writes come first).</summary>
    public async Task DrainAsync(MutationBudget budget, CancellationToken ct)
    {
        while (true)
        {
            AdapterEvent e;
            lock (_gate)
            {
                if (_queue.Count == 0) return;
                e = _queue.Peek();
            }
            if (!budget.TryTake()) return;
            lock (_gate) _queue.Dequeue();
            try
            {
                using var _ = await api.PostAsync($"apis/events.k8s.io/v1/namespaces/{e.Namespace}/events", Body(e).ToJsonString(), ct);
                Interlocked.Increment(ref _sent);
            }
            catch (Exception ex) when (ex is KubeApiException or HttpRequestException)
            {
                // Best effort: an event that cannot be recorded is logged and dropped, never retried in a loop.
                Interlocked.Increment(ref _dropped);
                LogEventFailed(logger, e.Reason, e.Namespace, e.Name, ex.Message);
            }
        }
    }

    private JsonObject Body(AdapterEvent e)
    {
        var now = time.GetUtcNow().UtcDateTime;
        var note = e.Note.Length <= 1024 ? e.Note : e.Note[..1021] + "...";
        return new JsonObject
        {
            ["apiVersion"] = "events.k8s.io/v1",
            ["kind"] = "Event",
            ["metadata"] = new JsonObject
            {
                ["name"] = $"{e.Name}.{now.Ticks.ToString("x", CultureInfo.InvariantCulture)}{Random.Shared.Next(0x1000):x3}",
                ["namespace"] = e.Namespace,
            },
            ["eventTime"] = now.ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture),
            ["reportingController"] = Controller,
            ["reportingInstance"] = identity,
            ["action"] = e.Action,
            ["reason"] = e.Reason,
            ["note"] = note,
            ["type"] = e.Type,
            ["regarding"] = new JsonObject
            {
                ["apiVersion"] = LoraAdapter.ApiVersionValue,
                ["kind"] = LoraAdapter.KindName,
                ["namespace"] = e.Namespace,
                ["name"] = e.Name,
                ["uid"] = e.Uid,
            },
        };
    }

    /// <summary>The event (if any) a status change deserves: phase transitions and a changed failure reason.</summary>
    public static AdapterEvent? ForTransition(string ns, string name, string? uid, LoraAdapterStatus? before, LoraAdapterStatus after)
    {
        var ready = after.Conditions?.FirstOrDefault(c => c.Type == LoraAdapterConditionTypes.Ready);
        var beforeReady = before?.Conditions?.FirstOrDefault(c => c.Type == LoraAdapterConditionTypes.Ready);
        var phaseChanged = before?.Phase != after.Phase;
        var reasonChanged = beforeReady?.Reason != ready?.Reason;
        if (!phaseChanged && !reasonChanged) return null;
        var reason = ready?.Reason is { Length: > 0 } r ? r : after.Phase ?? "Unknown";
        var warning = ready?.Status == "False" && after.Phase is LoraAdapterPhases.Failed or LoraAdapterPhases.Pending or LoraAdapterPhases.Partial;
        var note = $"{before?.Phase ?? "New"} -> {after.Phase}" + (ready?.Message is { Length: > 0 } m ? $": {m}" : "");
        return new AdapterEvent(ns, name, uid, warning ? "Warning" : "Normal", reason, "Reconcile", note);
    }

    [LoggerMessage(EventId = 740, Level = LogLevel.Warning, Message = "Recording event {Reason} for LoraAdapter {Namespace}/{Name} failed: {Message}")]
    private static partial void LogEventFailed(ILogger logger, string reason, string @namespace, string name, string message);
}
