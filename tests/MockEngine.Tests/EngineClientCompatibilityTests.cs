using HybridServing.Contracts.Engines;
using HybridServing.TestKit;

namespace HybridServing.MockEngine.Tests;

/// <summary>The shared engine client (what the sidecar uses) against the MockEngine.</summary>
public sealed class EngineClientCompatibilityTests : IDisposable
{
    private readonly TempDirectory _dir = new("me-client");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Vllm_engine_client_drives_the_mock_engine()
    {
        await using var engine = await MockEngineHost.StartAsync(
            new MockEngineHostOptions { Environment = new Dictionary<string, string> { ["VLLM_API_KEY"] = "k" } },
            "--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2", "--mock-profile", "tiny");
        using var http = new HttpClient { BaseAddress = engine.BaseUrl };
        var client = new VllmEngineClient(http, apiKey: "k");
        var ct = CancellationToken.None;

        Assert.True(await client.IsHealthyAsync(ct));
        var loaded = await client.LoadAdapterAsync("a", TestAdapters.Write(_dir.Path, "a"), inPlace: false, ct);
        Assert.True(loaded.Success, loaded.Message);
        var again = await client.LoadAdapterAsync("a", TestAdapters.Write(_dir.Path, "a2"), inPlace: false, ct);
        Assert.False(again.Success);
        Assert.Equal(400, again.StatusCode);
        Assert.Equal("InvalidUserInput", again.ErrorType);

        var models = await client.ListModelsAsync(ct);
        Assert.Equal([TestAdapters.TinyModel, "a"], models.Select(m => m.Id));
        Assert.Equal(TestAdapters.TinyModel, models[1].Parent);

        var load = await client.GetLoadAsync(ct);
        Assert.Equal(2, load.MaxLoras);
        Assert.Equal(0, load.Running);

        var unloaded = await client.UnloadAdapterAsync("a", ct);
        Assert.True(unloaded.Success, unloaded.Message);
        var missing = await client.UnloadAdapterAsync("a", ct);
        Assert.Equal(404, missing.StatusCode);
        Assert.Equal("The lora adapter 'a' cannot be found.", missing.Message);

        await engine.StopAsync();
        Assert.False(await client.IsHealthyAsync(ct));
    }
}
