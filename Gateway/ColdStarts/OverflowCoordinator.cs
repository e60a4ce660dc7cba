using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Observability;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.ColdStarts;

/// <summary>How an overflow load ended for one request.</summary>
internal enum OverflowOutcome
{
    /// <summary>The adapter became LOADED on the target; <see cref="OverflowResult.Decision"/> routes there.</summary>
    Served,
    /// <summary>The ControlPlane refused (or could not be reached): the request goes to a holder.</summary>
    Refused,
    /// <summary>The target was not ready within <c>Gateway:Picking:Overflow:Wait</c>: the request goes to a holder.</summary>
    TimedOut,
    /// <summary>The ControlPlane refused this (adapter, engine) recently; not asked again yet.</summary>
    CoolingDown,
}

internal sealed record OverflowResult(OverflowOutcome Outcome, PickDecision? Decision, string Message);

/// <summary>
/// Carries out what <see cref="OverflowAdvisor"/> advises: asks the ControlPlane to load a placed adapter
/// on one more engine (<c>RequestLoad</c> with <c>engine</c>), with one call in flight per (adapter,
/// engine) that every concurrent request shares, then waits — at most <c>Gateway:Picking:Overflow:Wait</c> —
/// until the routing table shows the adapter LOADED there and the pipeline, restricted to that engine,
/// picks it. The hard "never forward to an engine that does not hold the adapter" filter stays in force.
/// Anything else (refusal, unreachable ControlPlane, timeout) ends with the caller sending the request
/// to a holder as it would have without overflow: an overflow can delay a request by the wait bound, never fail it.
/// </summary>
internal sealed partial class OverflowCoordinator(
    AdapterRouter.AdapterRouterClient client,
    RoutingDatastore routes,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    GatewayTelemetry telemetry,
    IHostApplicationLifetime lifetime,
    ILogger<OverflowCoordinator> logger)
{
    private readonly Dictionary<(string Adapter, string Engine), PendingLoad> _loads = [];
    private readonly Dictionary<(string Adapter, string Engine), DateTimeOffset> _refusedUntil = [];
    private long _requestLoadCalls;

    /// <summary>The service-time and control-path figures the advisor weighs (fed by the forwarder and by <see cref="TryAsync"/>).</summary>
    public OverflowCostTracker Costs { get; } = new(options.Value.Picking.Overflow);

    /// <summary>RequestLoad calls with an engine made so far (tests check that waiters share one).</summary>
    public long RequestLoadCalls => Interlocked.Read(ref _requestLoadCalls);

    /// <summary>Overflow belongs to the hybrid policy: the baselines never overflow, whatever the configuration says.</summary>
    public bool IsEnabledFor(string policy) =>
        options.Value.Picking.Overflow.Enabled != false && string.Equals(policy, PickingPolicies.Hybrid, StringComparison.Ordinal);

    /// <summary>Overflow loads still being asked for on <paramref name="engine"/>: each will take one of its GPU slots.</summary>
    public int Pending(string engine)
    {
        var n = 0;
        lock (_loads)
            foreach (var ((_, e), load) in _loads)
                if (e == engine && !load.Task.IsCompleted) n++;
        return n;
    }

    /// <param name="pick">Routes on a snapshot, restricted to <paramref name="engine"/>; the wait ends when it returns it.</param>
    public async Task<OverflowResult> TryAsync(string adapter, string engine, Func<RoutingSnapshot, PickDecision> pick, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var result = await TryCoreAsync(adapter, engine, pick, cancellationToken);
        telemetry.Overflows.Add(1, new KeyValuePair<string, object?>("outcome", OutcomeName(result.Outcome)));
        var elapsed = time.GetElapsedTime(started).TotalSeconds;
        if (result.Outcome != OverflowOutcome.CoolingDown) telemetry.OverflowWait.Record(elapsed);
        if (result.Outcome == OverflowOutcome.Served) Costs.ObserveControlPath(elapsed);
        return result;
    }

    public static string OutcomeName(OverflowOutcome outcome) => outcome switch
    {
        OverflowOutcome.Served => "served",
        OverflowOutcome.Refused => "refused",
        OverflowOutcome.TimedOut => "timed-out",
        _ => "cooling-down",
    };

    private async Task<OverflowResult> TryCoreAsync(string adapter, string engine, Func<RoutingSnapshot, PickDecision> pick, CancellationToken caller)
    {
        var wait = options.Value.Picking.Overflow.Wait;
        if (RequestLoadOnce(adapter, engine) is not { } load)
            return new(OverflowOutcome.CoolingDown, null, $"the control plane refused '{adapter}' on {engine} recently");
        using var deadline = new CancellationTokenSource(wait, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, caller);
        var snapshot = routes.Current;
        try
        {
            while (true)
            {
                var decision = pick(snapshot);
                if (decision.Chosen is not null) return new(OverflowOutcome.Served, decision, "");
                if (load.IsCompleted && await load is { Accepted: false } refused)
                    return new(OverflowOutcome.Refused, null, string.IsNullOrEmpty(refused.Message) ? refused.Reason : $"{refused.Reason}: {refused.Message}");
                var changed = routes.WaitForChangeAsync(snapshot, linked.Token);
                await (load.IsCompleted ? changed : Task.WhenAny(changed, load));
                // WhenAny also completes on a cancelled wait: end here rather than spin to the load's answer.
                linked.Token.ThrowIfCancellationRequested();
                snapshot = routes.Current;
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !caller.IsCancellationRequested)
        {
            return new(OverflowOutcome.TimedOut, null, $"'{adapter}' was not loaded on {engine} within {wait.TotalSeconds:0.###} s");
        }
    }

    /// <summary>The shared call for (adapter, engine); null while a refusal of that pair cools down.</summary>
    private Task<RequestLoadResponse>? RequestLoadOnce(string adapter, string engine)
    {
        var now = time.GetUtcNow();
        lock (_loads)
        {
            if (_refusedUntil.TryGetValue((adapter, engine), out var until))
            {
                if (now < until) return null;
                _refusedUntil.Remove((adapter, engine));
            }
            // An accepted call is reused for one wait period: the table may take a moment to show the adapter.
            if (_loads.TryGetValue((adapter, engine), out var existing) &&
                (!existing.Task.IsCompleted || (existing.Task.Result.Accepted && now < existing.ReusableUntil)))
                return existing.Task;
            foreach (var done in _loads.Where(l => l.Value.Task.IsCompleted && now >= l.Value.ReusableUntil).Select(l => l.Key).ToList())
                _loads.Remove(done);
            var load = new PendingLoad(CallRequestLoadAsync(adapter, engine), now + options.Value.Picking.Overflow.Wait);
            _loads[(adapter, engine)] = load;
            return load.Task;
        }
    }

    private sealed record PendingLoad(Task<RequestLoadResponse> Task, DateTimeOffset ReusableUntil);

    private async Task<RequestLoadResponse> CallRequestLoadAsync(string adapter, string engine)
    {
        await Task.Yield();
        Interlocked.Increment(ref _requestLoadCalls);
        LogRequestOverflow(adapter, engine);
        var o = options.Value.Picking.Overflow;
        RequestLoadResponse response;
        try
        {
            // Shared by every waiter: not tied to the first one's request. Longer than a waiter's bound, so that a
            // slow answer still lands (later requests find the adapter there) instead of being cut off.
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(lifetime.ApplicationStopping);
            cts.CancelAfter(o.Wait + TimeSpan.FromSeconds(10));
            response = await client.RequestLoadAsync(new RequestLoadRequest { Name = adapter, Engine = engine }, cancellationToken: cts.Token);
        }
        catch (Exception ex) when (ex is Grpc.Core.RpcException or OperationCanceledException)
        {
            LogRequestOverflowFailed(ex, adapter, engine);
            response = new RequestLoadResponse { Accepted = false, Reason = "ControlPlaneUnavailable", Message = "the control plane could not be reached" };
        }
        if (!response.Accepted)
        {
            LogOverflowRefused(adapter, engine, response.Reason, response.Message);
            lock (_loads)
            {
                var now = time.GetUtcNow();
                foreach (var expired in _refusedUntil.Where(r => r.Value <= now).Select(r => r.Key).ToList()) _refusedUntil.Remove(expired);
                if (o.RefusalCooldown > TimeSpan.Zero) _refusedUntil[(adapter, engine)] = now + o.RefusalCooldown;
            }
        }
        return response;
    }

    [LoggerMessage(EventId = 402, Level = LogLevel.Debug, Message = "Every engine holding adapter {Adapter} has its GPU slots taken; asking the ControlPlane to load it on {Engine} as well.")]
    private partial void LogRequestOverflow(string adapter, string engine);

    [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "RequestLoad of adapter {Adapter} on engine {Engine} (overflow) failed.")]
    private partial void LogRequestOverflowFailed(Exception exception, string adapter, string engine);

    [LoggerMessage(EventId = 404, Level = LogLevel.Debug, Message = "Overflow of adapter {Adapter} on engine {Engine} refused ({Reason}): {Message}")]
    private partial void LogOverflowRefused(string adapter, string engine, string reason, string message);
}
