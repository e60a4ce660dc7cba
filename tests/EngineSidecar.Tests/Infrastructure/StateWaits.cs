using Grpc.Core;
using HybridServing.Contracts.Sidecar;

namespace HybridServing.EngineSidecar.Tests.Infrastructure;

/// <summary>Waits on the sidecar's own WatchState stream rather than sleeping.</summary>
internal static class StateWaits
{
    public static async Task<EngineState> WaitForStateAsync(this SidecarHost host, Func<EngineState, bool> predicate, TimeSpan? timeout = null, string? what = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        using var call = host.Client.WatchState(new WatchStateRequest(), cancellationToken: cts.Token);
        EngineState? last = null;
        try
        {
            await foreach (var state in call.ResponseStream.ReadAllAsync(cts.Token))
            {
                last = state;
                if (predicate(state)) return state;
            }
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled)
        {
        }
        catch (OperationCanceledException)
        {
        }
        throw new TimeoutException($"Timed out waiting for {what ?? "a state"}; last state: {last}");
    }

    public static AdapterStatus? Adapter(this EngineState state, string name) => state.Adapters.FirstOrDefault(a => a.Name == name);

    public static Task<EngineState> WaitForPhaseAsync(this SidecarHost host, string name, AdapterPhase phase, TimeSpan? timeout = null) =>
        host.WaitForStateAsync(s => s.Adapter(name)?.Phase == phase, timeout, $"{name} to be {phase}");

    public static AdapterSpec Spec(string name, string source, string? sha256 = null, string? baseModel = null) =>
        new() { Name = name, Source = source, Sha256 = sha256 ?? "", BaseModel = baseModel ?? "" };
}
