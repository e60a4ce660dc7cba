using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Observability;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.ColdStarts;

/// <summary>How a cold start ended for one waiting request.</summary>
internal enum ColdStartOutcome
{
    /// <summary>The adapter became routable; <see cref="ColdStartResult.Decision"/> holds the engine.</summary>
    Ready,
    /// <summary>The adapter left the routing table while waiting.</summary>
    Gone,
    /// <summary>The ControlPlane refused or could not be reached.</summary>
    Refused,
    /// <summary>The bounded wait ran out.</summary>
    TimedOut,
}

internal sealed record ColdStartResult(ColdStartOutcome Outcome, PickDecision? Decision, RoutingSnapshot Snapshot, string Message);

/// <summary>
/// Loads adapters that no engine holds. One <c>RequestLoad</c> per adapter is in flight at a time and
/// every concurrent request for that adapter waits on it; each waiter then watches the routing
/// table until the adapter is LOADED somewhere it may go, up to <c>Gateway:ColdStart:Timeout</c>.
/// </summary>
internal sealed partial class ColdStartCoordinator(
    AdapterRouter.AdapterRouterClient client,
    RoutingDatastore routes,
    IOptions<GatewayOptions> options,
    TimeProvider time,
    GatewayTelemetry telemetry,
    IHostApplicationLifetime lifetime,
    ILogger<ColdStartCoordinator> logger)
{
    private readonly Dictionary<string, PendingLoad> _loads = new(StringComparer.Ordinal);
    private long _requestLoadCalls;

    /// <summary>RequestLoad calls made so far (tests check that waiters share one).</summary>
    public long RequestLoadCalls => Interlocked.Read(ref _requestLoadCalls);

    /// <param name="pick">Routes on a snapshot; the wait ends when it returns an engine.</param>
    public async Task<ColdStartResult> WaitAsync(string adapter, Func<RoutingSnapshot, PickDecision> pick, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var timeout = options.Value.ColdStart.Timeout;
        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token, cancellationToken);
        var snapshot = routes.Current;
        var result = await WaitCoreAsync(adapter, pick, snapshot, linked.Token, deadline.Token, cancellationToken);
        telemetry.ColdStarts.Add(1, new KeyValuePair<string, object?>("outcome", result.Outcome.ToString().ToLowerInvariant()));
        telemetry.ColdStartWait.Record(time.GetElapsedTime(started).TotalSeconds);
        return result;
    }

    private async Task<ColdStartResult> WaitCoreAsync(string adapter, Func<RoutingSnapshot, PickDecision> pick, RoutingSnapshot snapshot,
        CancellationToken token, CancellationToken deadline, CancellationToken caller)
    {
        Task<RequestLoadResponse>? load = null;
        try
        {
            while (true)
            {
                if (!snapshot.Adapters.ContainsKey(adapter))
                    return new(ColdStartOutcome.Gone, null, snapshot, $"The model `{adapter}` does not exist.");
                var decision = pick(snapshot);
                if (decision.Chosen is not null) return new(ColdStartOutcome.Ready, decision, snapshot, "");

                // Ask once: only when nothing is already on its way (no LOADING endpoint) or it went
                // back to nowhere after our earlier request completed.
                if (load is null && !IsLoadingSomewhere(snapshot, adapter))
                    load = RequestLoadOnce(adapter);
                if (load is not null && load.IsCompleted)
                {
                    var response = await load;
                    if (!response.Accepted)
                        return new(ColdStartOutcome.Refused, null, snapshot,
                            $"The model `{adapter}` cannot be loaded now: {Describe(response)}");
                }

                var changed = routes.WaitForChangeAsync(snapshot, token);
                if (load is not null && !load.IsCompleted) await Task.WhenAny(changed, load).WaitAsync(token);
                else await changed;
                // WhenAny also completes on a cancelled wait: end here rather than spin until the load answers.
                token.ThrowIfCancellationRequested();
                snapshot = routes.Current;
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !caller.IsCancellationRequested)
        {
            return new(ColdStartOutcome.TimedOut, null, snapshot,
                $"The model `{adapter}` is being loaded and was not ready within {options.Value.ColdStart.Timeout.TotalSeconds:0.#} s; retry shortly.");
        }
    }

    private static bool IsLoadingSomewhere(RoutingSnapshot snapshot, string adapter) =>
        snapshot.Adapters.TryGetValue(adapter, out var a) && a.Endpoints.Values.Any(r => r == Residency.Loading);

    private static string Describe(RequestLoadResponse r) =>
        string.IsNullOrEmpty(r.Message) ? (string.IsNullOrEmpty(r.Reason) ? "the control plane refused the load" : r.Reason)
        : string.IsNullOrEmpty(r.Reason) ? r.Message : $"{r.Reason}: {r.Message}";

    private Task<RequestLoadResponse> RequestLoadOnce(string adapter)
    {
        lock (_loads)
        {
            // An accepted request is reused for one timeout period: the table may take a moment to
            // show LOADING, and asking again in that gap would only duplicate the load.
            if (_loads.TryGetValue(adapter, out var existing) &&
                (!existing.Task.IsCompleted || (existing.Task.Result.Accepted && time.GetUtcNow() < existing.ReusableUntil)))
                return existing.Task;
            var request = new PendingLoad(CallRequestLoadAsync(adapter), time.GetUtcNow() + options.Value.ColdStart.Timeout);
            _loads[adapter] = request;
            return request.Task;
        }
    }

    private sealed record PendingLoad(Task<RequestLoadResponse> Task, DateTimeOffset ReusableUntil);

    private async Task<RequestLoadResponse> CallRequestLoadAsync(string adapter)
    {
        await Task.Yield();
        Interlocked.Increment(ref _requestLoadCalls);
        LogRequestLoad(adapter);
        try
        {
            // Not tied to the first waiter: others share this call, so one client leaving must not cancel it.
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(lifetime.ApplicationStopping);
            // Longer than a waiter's bound: a slow answer must end as "timed out" for waiters, not as a refusal.
            cts.CancelAfter(options.Value.ColdStart.Timeout + TimeSpan.FromSeconds(10));
            return await client.RequestLoadAsync(new RequestLoadRequest { Name = adapter }, cancellationToken: cts.Token);
        }
        catch (Exception ex) when (ex is Grpc.Core.RpcException or OperationCanceledException)
        {
            LogRequestLoadFailed(ex, adapter);
            return new RequestLoadResponse { Accepted = false, Reason = "ControlPlaneUnavailable", Message = "the control plane could not be reached" };
        }
    }

    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Adapter {Adapter} is loaded nowhere; asking the ControlPlane to load it.")]
    private partial void LogRequestLoad(string adapter);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "RequestLoad for adapter {Adapter} failed.")]
    private partial void LogRequestLoadFailed(Exception exception, string adapter);
}
