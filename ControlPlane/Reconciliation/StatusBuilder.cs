using HybridServing.Contracts.Resources;
using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Placement;
using k8s.Models;

namespace HybridServing.ControlPlane.Reconciliation;

/// <summary>Turns one reconcile's picture into a LoraAdapter's Kubernetes-style status. Pure.</summary>
internal static class StatusBuilder
{
    // Adapter-level failure reasons, most telling first (picked for the Ready condition's reason).
    private static readonly string[] ReasonOrder =
    [
        LoraAdapterReasons.NameConflict, LoraAdapterReasons.InvalidAdapter, LoraAdapterReasons.AdapterNotFound,
        LoraAdapterReasons.AdapterIncompatible, LoraAdapterReasons.SourceUnavailable, LoraAdapterReasons.NoCompatibleEngine,
        LoraAdapterReasons.InsufficientCapacity, LoraAdapterReasons.Preempted, LoraAdapterReasons.LoadFailed,
    ];

    // Reasons that clear up by themselves when engines appear or free up: the resource is Pending, not Failed.
    private static readonly HashSet<string> WaitingReasons =
    [
        LoraAdapterReasons.NoCompatibleEngine, LoraAdapterReasons.InsufficientCapacity, LoraAdapterReasons.Preempted,
        LoraAdapterReasons.LoadFailed, LoraAdapterReasons.SourceUnavailable,
    ];

    public static LoraAdapterStatus Build(
        ResourceState resource,
        ReconcileModel model,
        IReadOnlyDictionary<string, EngineView> views,
        AdapterBackoff backoff,
        LoraAdapterStatus? previous,
        DateTime now)
    {
        var generation = resource.Declared.Resource.Metadata.Generation;
        var status = new LoraAdapterStatus { ObservedGeneration = generation };

        if (resource.SpecError is { } specError)
        {
            status.Phase = LoraAdapterPhases.Failed;
            status.Conditions = Conditions(previous, now, generation,
                (LoraAdapterConditionTypes.Ready, false, LoraAdapterReasons.InvalidSpec, specError),
                (LoraAdapterConditionTypes.Scheduled, false, LoraAdapterReasons.InvalidSpec, "not scheduled: the spec is invalid."),
                (LoraAdapterConditionTypes.Loaded, false, LoraAdapterReasons.InvalidSpec, "nothing is loaded: the spec is invalid."),
                (LoraAdapterConditionTypes.Degraded, true, LoraAdapterReasons.InvalidSpec, specError));
            return status;
        }
        if (resource.Discovery is { SourceError: { } sourceError } discovery)
        {
            var message = resource.NextDiscovery is { } next ? $"{sourceError} Next attempt at {next.UtcDateTime:O}." : sourceError;
            status.Phase = LoraAdapterPhases.Failed;
            status.Conditions = Conditions(previous, now, generation,
                (LoraAdapterConditionTypes.Ready, false, discovery.SourceErrorReason!, message),
                (LoraAdapterConditionTypes.Scheduled, false, discovery.SourceErrorReason!, "not scheduled: the source could not be listed."),
                (LoraAdapterConditionTypes.Loaded, false, discovery.SourceErrorReason!, "nothing is loaded: the source could not be listed."),
                (LoraAdapterConditionTypes.Degraded, true, discovery.SourceErrorReason!, message));
            return status;
        }

        var failed = new List<FailedAdapter>();
        foreach (var f in resource.Discovery?.Failures ?? []) failed.Add(new FailedAdapter { Name = f.Name, Reason = f.Reason, Message = f.Message });
        foreach (var f in resource.Conflicts) failed.Add(new FailedAdapter { Name = f.Name, Reason = f.Reason, Message = f.Message });

        var pods = new SortedDictionary<string, PodAssignment>(StringComparer.Ordinal);
        PodAssignment Pod(string engine) => pods.TryGetValue(engine, out var p) ? p
            : pods[engine] = new PodAssignment { Pod = engine, Node = views.TryGetValue(engine, out var v) ? v.Node : null };

        var loaded = new List<string>();
        int wanted = 0, ready = 0, placedReplicas = 0, loadedReplicas = 0, failingReplicas = 0;
        foreach (var adapter in resource.Owned)
        {
            var demanded = model.Demands.TryGetValue(adapter.Name, out var demand);
            var engines = model.Plan.EnginesFor(adapter.Name);
            var loadedHere = 0;
            BackoffEntry? refusal = null;
            foreach (var engine in engines)
            {
                var state = views.TryGetValue(engine, out var view) && view.Adapters.TryGetValue(adapter.Name, out var s) ? s : null;
                var phase = state is null ? "Pending" : PhaseName(state.Phase);
                if (state?.Phase == AdapterPhase.Loaded) loadedHere++;
                placedReplicas++;
                Pod(engine).AdapterStates.Add(new PodAdapterState
                {
                    Name = adapter.Name,
                    State = phase,
                    Message = state?.Message is { Length: > 0 } m ? m : null,
                    Reason = state?.Reason is { Length: > 0 } r ? r : null,
                });
            }
            loadedReplicas += loadedHere;
            // Only pairs still backing off are shown: an expired entry keeps its count (for the next delay) but is history.
            foreach (var b in backoff.For(adapter.Name).Where(b => b.NextRetry > now).OrderBy(b => b.Engine, StringComparer.Ordinal))
            {
                failingReplicas++;
                var nextRetry = (DateTime?)b.NextRetry.UtcDateTime;
                var existing = Pod(b.Engine).AdapterStates.FirstOrDefault(a => a.Name == adapter.Name);
                if (existing is null) Pod(b.Engine).AdapterStates.Add(existing = new PodAdapterState { Name = adapter.Name });
                if (existing.State is not ("Loaded" or "Loading" or "Downloading"))
                {
                    existing.State = "Failed";
                    existing.Reason = b.Reason;
                    existing.Message = b.Message;
                }
                existing.Attempts = b.Failures;
                if (b.Permanent)
                {
                    // Not retried: the sidecar waits for a new spec, and so does placement on that engine.
                    refusal ??= b;
                    failed.Add(new FailedAdapter
                    {
                        Name = adapter.Name, Reason = b.Reason, Pod = b.Engine, Attempts = b.Failures,
                        Message = $"{b.Engine} refused it ({b.Reason}): {b.Message} Not retried until the adapter's source changes.",
                    });
                    continue;
                }
                existing.NextRetryTime = nextRetry;
                failed.Add(new FailedAdapter
                {
                    Name = adapter.Name, Reason = LoraAdapterReasons.LoadFailed, Pod = b.Engine, Attempts = b.Failures, NextRetryTime = nextRetry,
                    Message = $"loading on {b.Engine} failed {b.Failures} time(s) ({b.Reason}): {b.Message}" + (nextRetry is { } t ? $" Next attempt at {t:O}." : ""),
                });
            }
            if (loadedHere > 0) loaded.Add(adapter.Name);
            // Refused where it is not loaded anywhere: the adapter itself failed, whatever placement does next.
            if (refusal is not null && loadedHere == 0)
                failed.Add(new FailedAdapter { Name = adapter.Name, Reason = refusal.Reason, Message = $"{refusal.Engine} refused it: {refusal.Message}" });
            if (!demanded) continue; // on demand and not requested
            wanted++;
            if (refusal is not null && loadedHere == 0) continue; // its shortfall only follows from the refusals
            if (model.Plan.Shortfalls.TryGetValue(adapter.Name, out var shortfall))
                failed.Add(new FailedAdapter { Name = adapter.Name, Reason = shortfall.Reason, Message = shortfall.Message });
            if (loadedHere >= Math.Max(1, Math.Min(demand!.MinReplicas, demand.MaxReplicas))) ready++;
        }

        status.LoadedAdapters = [.. loaded.Order(StringComparer.Ordinal)];
        status.FailedAdapters = failed.Count > 0 ? failed : null;
        status.PodAssignments = [.. pods.Values.Select(p =>
        {
            p.AdapterStates = [.. p.AdapterStates.OrderBy(a => a.Name, StringComparer.Ordinal)];
            p.Adapters = [.. p.AdapterStates.Select(a => a.Name)];
            return p;
        })];
        status.Adapters = [.. resource.Owned.Select(a => new DiscoveredAdapterStatus
        {
            // A signed URL's query is a credential: status shows the URL without it (the sidecar is sent it whole).
            Name = a.Name, Uri = Sources.SourceHttp.Display(a.Uri), Rank = a.Rank, SizeBytes = a.SizeBytes, Digest = a.Digest.Length > 0 ? $"sha256:{a.Digest}" : null, TargetModules = [.. a.TargetModules],
        })];

        // Failures that concern a whole adapter (it is missing, conflicting, unplaceable) versus one replica.
        var adapterFailures = failed.Where(f => f.Pod is null).ToList();
        var first = adapterFailures.OrderBy(f => AdapterBackoff.IsPermanent(f.Reason) ? -1 : Array.IndexOf(ReasonOrder, f.Reason) is var i && i < 0 ? int.MaxValue : i).FirstOrDefault();
        string FirstMessage(IReadOnlyList<FailedAdapter> list, FailedAdapter f) =>
            $"adapter '{f.Name}': {f.Message}" + (list.Count > 1 ? $" (and {list.Count - 1} more in failedAdapters)" : "");

        (string Type, bool Value, string Reason, string Message) readyCondition, scheduled, loadedCondition, degraded;
        if (resource.Owned.Count == 0 && failed.Count == 0)
        {
            status.Phase = LoraAdapterPhases.Pending;
            var msg = "no adapter in the source matches spec.adapterSource (adapters, pattern, prefix); the source is listed again periodically.";
            readyCondition = (LoraAdapterConditionTypes.Ready, false, LoraAdapterReasons.NoAdapters, msg);
        }
        else if (first is not null)
        {
            status.Phase = ready > 0 ? LoraAdapterPhases.Partial
                : AdapterBackoff.IsPermanent(first.Reason) ? LoraAdapterPhases.Failed
                : placedReplicas > 0 ? LoraAdapterPhases.Loading
                : adapterFailures.All(f => WaitingReasons.Contains(f.Reason)) ? LoraAdapterPhases.Pending : LoraAdapterPhases.Failed;
            readyCondition = (LoraAdapterConditionTypes.Ready, false, first.Reason, FirstMessage(adapterFailures, first));
        }
        else if (wanted == 0)
        {
            status.Phase = LoraAdapterPhases.Ready;
            readyCondition = (LoraAdapterConditionTypes.Ready, true, LoraAdapterReasons.OnDemand, $"{resource.Owned.Count} adapter(s) load on demand (loadOnStartup: false).");
        }
        else if (ready == wanted)
        {
            status.Phase = LoraAdapterPhases.Ready;
            readyCondition = (LoraAdapterConditionTypes.Ready, true, LoraAdapterReasons.AllLoaded, $"{ready} adapter(s) loaded on their minimum number of engines.");
        }
        else
        {
            // Nothing failed: the rest are on their way.
            status.Phase = LoraAdapterPhases.Loading;
            readyCondition = (LoraAdapterConditionTypes.Ready, false, LoraAdapterReasons.Loading, $"{ready} of {wanted} adapter(s) loaded; the rest are loading.");
        }

        var shortfalls = failed.Where(f => f.Pod is null && model.Plan.Shortfalls.ContainsKey(f.Name)).ToList();
        scheduled = shortfalls.Count == 0
            ? (LoraAdapterConditionTypes.Scheduled, true, LoraAdapterReasons.AllScheduled, $"{placedReplicas} replica(s) placed.")
            : (LoraAdapterConditionTypes.Scheduled, false, shortfalls[0].Reason, FirstMessage(shortfalls, shortfalls[0]));
        loadedCondition = failingReplicas > 0
            ? (LoraAdapterConditionTypes.Loaded, false, LoraAdapterReasons.LoadFailed, $"{failingReplicas} replica(s) failed to load and are backing off; {loadedReplicas} of {placedReplicas} placed replica(s) loaded.")
            : loadedReplicas == placedReplicas
                ? (LoraAdapterConditionTypes.Loaded, placedReplicas > 0, placedReplicas > 0 ? LoraAdapterReasons.AllLoaded : LoraAdapterReasons.OnDemand, $"{loadedReplicas} of {placedReplicas} placed replica(s) loaded.")
                : (LoraAdapterConditionTypes.Loaded, false, LoraAdapterReasons.Loading, $"{loadedReplicas} of {placedReplicas} placed replica(s) loaded.");
        var anyFailure = failed.OrderBy(f => f.Pod is null ? 0 : 1).ThenBy(f => AdapterBackoff.IsPermanent(f.Reason) ? 0 : 1).FirstOrDefault();
        degraded = anyFailure is null
            ? (LoraAdapterConditionTypes.Degraded, false, LoraAdapterReasons.Healthy, "no failures.")
            : (LoraAdapterConditionTypes.Degraded, true, anyFailure.Reason, FirstMessage(failed, anyFailure));

        status.Conditions = Conditions(previous, now, generation, readyCondition, scheduled, loadedCondition, degraded);
        return status;
    }

    public static string PhaseName(AdapterPhase phase) => phase switch
    {
        AdapterPhase.Pending => "Pending",
        AdapterPhase.Downloading => "Downloading",
        AdapterPhase.Loading => "Loading",
        AdapterPhase.Loaded => "Loaded",
        AdapterPhase.Failed => "Failed",
        AdapterPhase.Unloading => "Unloading",
        _ => "Pending",
    };

    /// <summary>Builds conditions, keeping lastTransitionTime when a condition's status did not change.</summary>
    private static List<V1Condition> Conditions(LoraAdapterStatus? previous, DateTime now, long? generation,
        params (string Type, bool Value, string Reason, string Message)[] conditions) =>
        [.. conditions.Select(c =>
        {
            var value = c.Value ? "True" : "False";
            var old = previous?.Conditions?.FirstOrDefault(p => p.Type == c.Type);
            return new V1Condition
            {
                Type = c.Type,
                Status = value,
                Reason = c.Reason,
                Message = c.Message,
                ObservedGeneration = generation,
                LastTransitionTime = old is not null && old.Status == value ? old.LastTransitionTime : now,
            };
        })];
}
