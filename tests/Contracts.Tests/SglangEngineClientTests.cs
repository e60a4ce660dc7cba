using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using HybridServing.Contracts.Engines;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace HybridServing.Contracts.Tests;

public sealed class SglangEngineClientTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<(string Path, JsonNode Body)> _calls = new();
    private WebApplication? _engine;
    private IEngineClient _client = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        _engine = builder.Build();
        _engine.MapPost("/{route}", async (string route, HttpRequest request) =>
        {
            var body = (await JsonNode.ParseAsync(request.Body))!;
            _calls.Enqueue((route, body));
            // SGLang refuses some loads with 200 and success=false.
            return (string?)body["lora_name"] == "refused"
                ? Results.Json(new { success = false, error_message = "LoRA rank too large", loaded_adapters = Array.Empty<string>() })
                : Results.Json(new { success = true, error_message = "", loaded_adapters = new[] { (string?)body["lora_name"] } });
        });
        await _engine.StartAsync();
        _client = new SglangEngineClient(new HttpClient { BaseAddress = new Uri(_engine.Urls.First()) });
    }

    public async Task DisposeAsync()
    {
        if (_engine is not null) await _engine.DisposeAsync();
    }

    [Fact]
    public async Task A_pinned_load_through_the_interface_reaches_sglang()
    {
        var result = await _client.LoadAdapterAsync("a", "/p", inPlace: false, pinned: true, CancellationToken.None);
        Assert.True(result.Success);
        var (path, body) = Assert.Single(_calls);
        Assert.Equal("load_lora_adapter", path);
        Assert.True((bool)body["pinned"]!);
    }

    [Fact]
    public async Task A_reload_in_place_is_an_unload_then_a_load()
    {
        await _client.LoadAdapterAsync("a", "/v2", inPlace: true, CancellationToken.None);
        Assert.Equal(["unload_lora_adapter", "load_lora_adapter"], _calls.Select(c => c.Path));
    }

    [Fact]
    public async Task A_refusal_with_status_200_is_reported_as_400_with_sglangs_message()
    {
        var result = await _client.LoadAdapterAsync("refused", "/p", inPlace: false, CancellationToken.None);
        Assert.False(result.Success);
        Assert.Equal(400, result.StatusCode);
        Assert.Equal("LoRA rank too large", result.Message);
        Assert.False(result.IsTransient);
    }
}
