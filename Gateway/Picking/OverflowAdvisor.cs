using HybridServing.Contracts.ControlPlane;

namespace HybridServing.Gateway.Picking;

/// <summary>
/// Decides whether an adapter request should go to an engine that does not hold the adapter yet,
/// once the ControlPlane has loaded it there (an overflow load). With many adapters and few engines
/// placement gives most adapters one engine, and a request then waits — often seconds — for one of
/// that engine's GPU LoRA slots (vLLM's <c>max_loras</c>) while another engine has free slots and
/// could register the adapter from its node's disk in tens of milliseconds. In the cluster simulator
/// this lifts the knee at 16 engines from 45 to 67 req/s (bench/ClusterSimulator/README.md).
/// <para>
/// Advice is given only on fresh, known load and only when the wait is certain: the pipeline chose an
/// engine where the adapter is neither running nor has a free GPU slot, and so is every other healthy
/// holder. The target serves the base model, is healthy, not ejected, not tried, its load is known, it
/// has at least <see cref="OverflowOptions.FreeSlotHeadroom"/> free GPU slots beyond the one the adapter
/// will take (minus overflow loads already on their way there) and at most
/// <see cref="OverflowOptions.MaxQueueDepth"/> waiting requests. Most free slots wins, then fewest
/// in-flight requests, then the name. Pure: the cluster simulator calls the same code.
/// </para>
/// <para>
/// An overflow load pays for itself only when the request would wait longer for a holder's slot than the
/// control path takes to load the adapter elsewhere: <see cref="SlotWait"/> estimates the wait from the
/// holder's scraped queue and the service time the gateway has observed, and the advice is withheld when
/// the shortest holder wait is not above <see cref="OverflowCost.ControlPathSeconds"/> (or while no service
/// time has been observed yet).
/// </para>
/// </summary>
internal static class OverflowAdvisor
{
    /// <param name="request">The request as the pipeline saw it.</param>
    /// <param name="decision">The pipeline's decision for it.</param>
    /// <param name="cost">What the gateway has observed: request service time and the overflow control path.</param>
    /// <param name="pendingOn">Overflow loads already on their way to an engine, each of which will take one of its slots.</param>
    /// <returns>The engine to load the adapter on and send the request to, or null to keep the pipeline's decision.</returns>
    public static Candidate? Advise(PickRequest request, PickDecision decision, OverflowOptions options, OverflowCost cost, Func<string, int>? pendingOn = null)
    {
        if (request.AdapterName is not { } adapter || decision.Chosen is not { } chosen || !SlotBound(chosen, adapter)) return null;
        if (cost.ServiceSeconds is not { } service) return null;
        var wait = SlotWait(chosen, adapter, service);
        foreach (var c in request.Candidates)
        {
            if (c.Residency != Residency.Loaded || !Usable(request, c)) continue;
            if (!SlotBound(c, adapter)) return null;
            wait = Math.Min(wait, SlotWait(c, adapter, service));
        }
        if (wait <= options.WaitToCostRatio * cost.ControlPathSeconds) return null;

        Candidate? best = null;
        var bestFree = 0;
        foreach (var c in request.Candidates)
        {
            if (c.Residency == Residency.Loaded || !Usable(request, c) || c.Load is not { } load) continue;
            if (load.Waiting > options.MaxQueueDepth) continue;
            var free = c.MaxLoras - load.RunningAdapters.Count - (pendingOn?.Invoke(c.Name) ?? 0);
            if (free < 1 + options.FreeSlotHeadroom) continue;
            if (best is null || free > bestFree
                || free == bestFree && (c.InFlight < best.InFlight || c.InFlight == best.InFlight && string.CompareOrdinal(c.Name, best.Name) < 0))
            {
                best = c;
                bestFree = free;
            }
        }
        return best;
    }

    /// <summary>
    /// Expected seconds a request for <paramref name="adapter"/> waits for a GPU slot on a slot-bound
    /// <paramref name="holder"/>: its slots turn over about every <paramref name="serviceSeconds"/> (an
    /// adapter keeps its slot while it has requests running), so one frees every
    /// <c>serviceSeconds / max_loras</c>; the request needs the slot after those of the other waiting
    /// adapters ahead of it — all of them when its adapter is not queued yet (it joins the back), half on
    /// average when it is (it rides on that earlier request's slot).
    /// </summary>
    public static double SlotWait(Candidate holder, string adapter, double serviceSeconds)
    {
        if (holder.MaxLoras <= 0 || holder.Load is not { } load) return double.PositiveInfinity;
        var others = load.WaitingAdapters.Where(a => !string.Equals(a, adapter, StringComparison.Ordinal)).Distinct(StringComparer.Ordinal).Count();
        var ahead = holder.AdapterWaiting(adapter) ? others / 2.0 : others;
        return (ahead + 1) * serviceSeconds / holder.MaxLoras;
    }

    /// <summary>The request would wait there for a GPU slot: load known, adapter not running, every slot taken.</summary>
    private static bool SlotBound(Candidate c, string adapter) => c.Load is not null && c.MaxLoras > 0 && !c.AdapterRunning(adapter) && !c.HasFreeSlot;

    private static bool Usable(PickRequest request, Candidate c) =>
        c.Engine.BaseModels.Contains(request.Model.BaseModel) && c.Engine.Healthy && !c.Ejected && !request.Excluded.Contains(c.Name);
}
