using HybridServing.Contracts.Telemetry;
using Grpc.Core;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Reconciliation;

namespace HybridServing.EngineSidecar.Api;

/// <summary>
/// The gRPC face of the sidecar (Contracts/Protos/sidecar.proto). Writes only change the desired set and return
/// at once with each adapter's current status; the reconciler does the work and WatchState shows its progress.
/// In file mode the config file owns the desired set, so writes are refused with FAILED_PRECONDITION.
/// </summary>
internal sealed class EngineSidecarService(AdapterStateStore store, SidecarOptions options, IHostApplicationLifetime lifetime, TraceHandoff traces) : Contracts.Sidecar.EngineSidecar.EngineSidecarBase
{
    public override Task<EngineInfo> GetInfo(GetInfoRequest request, ServerCallContext context) => Task.FromResult(store.Info);

    public override Task<EnsureAdaptersResponse> EnsureAdapters(EnsureAdaptersRequest request, ServerCallContext context)
    {
        RefuseInFileMode();
        var duplicates = request.Adapters.GroupBy(a => a.Name, StringComparer.Ordinal).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0)
            throw new RpcException(new Status(StatusCode.InvalidArgument,
                $"The desired set names {string.Join(", ", duplicates.Select(d => $"'{d}'"))} more than once; each adapter name must appear once."));
        // The reconcile pass this wakes continues the caller's trace (a cold start's RequestLoad, via the ControlPlane).
        traces.Add();
        var statuses = store.SetDesired(request.Adapters.Select(DesiredAdapter.From).ToList(), request.Generation, UnloadScope.AllUndesired);
        var response = new EnsureAdaptersResponse { Generation = store.Generation };
        response.Adapters.AddRange(statuses);
        return Task.FromResult(response);
    }

    public override Task<ListAdaptersResponse> ListAdapters(ListAdaptersRequest request, ServerCallContext context)
    {
        var response = new ListAdaptersResponse();
        response.Adapters.AddRange(store.List());
        return Task.FromResult(response);
    }

    public override Task<AdapterStatus> Load(LoadRequest request, ServerCallContext context)
    {
        RefuseInFileMode();
        if (request.Adapter is null)
            throw new RpcException(new Status(StatusCode.InvalidArgument, "LoadRequest.adapter is required."));
        return Task.FromResult(store.AddDesired(DesiredAdapter.From(request.Adapter)));
    }

    public override Task<UnloadResponse> Unload(UnloadRequest request, ServerCallContext context)
    {
        RefuseInFileMode();
        if (string.IsNullOrEmpty(request.Name))
            throw new RpcException(new Status(StatusCode.InvalidArgument, "UnloadRequest.name is required."));
        if (AdapterNames.Check(request.Name) is { } problem)
            throw new RpcException(new Status(StatusCode.InvalidArgument, problem));
        return Task.FromResult(new UnloadResponse { Removed = store.RemoveDesired(request.Name) });
    }

    public override async Task WatchState(WatchStateRequest request, IServerStreamWriter<EngineState> responseStream, ServerCallContext context)
    {
        // End the stream when the sidecar stops, so shutdown does not wait for watchers to hang up.
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, lifetime.ApplicationStopping);
        var cancellationToken = linked.Token;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var state = store.Snapshot(out var version);
                await responseStream.WriteAsync(state, cancellationToken);
                // Full snapshots: a slow reader skips intermediate states but always sees the latest (level-based).
                await store.WaitForChangeAsync(version, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away or the server is stopping.
        }
    }

    private void RefuseInFileMode()
    {
        if (options.FileMode)
            throw new RpcException(new Status(StatusCode.FailedPrecondition,
                $"This sidecar runs in file mode: its desired set comes from {options.EffectiveConfigFile}. Edit that file (ConfigMap) instead."));
    }
}
