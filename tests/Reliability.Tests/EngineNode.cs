using System.Globalization;
using HybridServing.TestKit;

namespace HybridServing.Reliability.Tests;

/// <summary>One MockEngine and its EngineSidecar, each its own process, as both stacks start them.</summary>
public sealed record EngineNode(ChildProcess Engine, ChildProcess Sidecar, Uri SidecarGrpc)
{
    /// <summary>Starts <c>engine-{i}</c> on node <c>node-{i}</c>; the sidecar may read local adapters under <paramref name="adapterRoot"/>.</summary>
    /// <param name="hostSlots">vLLM's <c>--max-cpu-loras</c>: how many adapters the engine can hold at all (4 on the GPU).</param>
    public static async Task<EngineNode> StartAsync(int i, TempDirectory dir, string adapterRoot, int hostSlots = 4)
    {
        var port = Ports.GetFree();
        // Tiny's ≈1 ms steps slowed twentyfold: a 400-token stream lasts seconds, long enough to be cut.
        var engine = await ChildProcess.StartAsync($"engine-{i}", LocalStack.Dll("MockEngine"),
            ["--model", LocalStack.BaseModel, "--enable-lora", "--max-loras", "4", "--max-cpu-loras", Invariant(hostSlots), "--max-lora-rank", "16",
             "--host", "127.0.0.1", "--port", Invariant(port), "--mock-time-scale", "0.05", "--mock-seed", Invariant(i)],
            LocalStack.Url(port), new Dictionary<string, string>
            {
                ["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "true",
                ["Logging__LogLevel__HybridServing.MockEngine.Lora"] = "Information",
                ["Logging__Console__FormatterName"] = "simple",
            });
        engine.Watch(LocalStack.LoadedLine);
        engine.Watch(LocalStack.UnloadedLine);

        var http = Ports.GetFree();
        var grpc = LocalStack.Url(Ports.GetFree());
        try
        {
            var sidecar = await ChildProcess.StartAsync($"engine-{i}-sidecar", LocalStack.Dll("EngineSidecar"), [], LocalStack.Url(http), new Dictionary<string, string>
            {
                ["Kestrel__Endpoints__Http__Url"] = LocalStack.Url(http).ToString(),
                ["Kestrel__Endpoints__Grpc__Url"] = grpc.ToString(),
                ["Kestrel__Endpoints__Grpc__Protocols"] = "Http2",
                ["Sidecar__EngineUrl"] = engine.Url.ToString(),
                ["Sidecar__EngineKind"] = "vllm",
                ["Sidecar__PodName"] = engine.Name,
                ["Sidecar__NodeName"] = $"node-{i}",
                ["Sidecar__MaxLoras"] = "4",
                ["Sidecar__MaxCpuLoras"] = Invariant(hostSlots),
                ["Sidecar__MaxLoraRank"] = "16",
                ["Sidecar__CacheDirectory"] = dir.Combine($"cache-{i}"),
                ["Sidecar__AllowedLocalRoots__0"] = adapterRoot,
            });
            return new EngineNode(engine, sidecar, grpc);
        }
        catch
        {
            await engine.DisposeAsync();
            throw;
        }
    }

    /// <summary>Runtime loads and unloads the engine logged (its LoraEndpoints' lines).</summary>
    public int Loads => Engine.CountLines(LocalStack.LoadedLine);
    public int Unloads => Engine.CountLines(LocalStack.UnloadedLine);

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
