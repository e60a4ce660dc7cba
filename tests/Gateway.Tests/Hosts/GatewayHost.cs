using System.Net.Http.Headers;
using HybridServing.Gateway.Routing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HybridServing.Gateway.Tests.Hosts;

/// <summary>The gateway started the way Program.cs starts it, on real Kestrel at 127.0.0.1.</summary>
internal sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GatewayHost(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
        Client = new HttpClient { BaseAddress = url, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Url { get; }
    public HttpClient Client { get; }
    public IServiceProvider Services => _app.Services;
    public RoutingDatastore Routes => Services.GetRequiredService<RoutingDatastore>();

    /// <summary>Starts a gateway against <paramref name="controlPlane"/>. Defaults: no API key required, scraping on.</summary>
    public static async Task<GatewayHost> StartAsync(Uri controlPlane, IDictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Logging.ClearProviders();
        var config = new Dictionary<string, string?>
        {
            ["services:controlplane:grpc:0"] = controlPlane.ToString(),
            ["Gateway:Tenancy:RequireApiKey"] = "false",
            ["Gateway:Picking:Seed"] = "1",
            ["Gateway:RoutingTable:ReconnectMinDelay"] = "00:00:00.050",
            ["Gateway:RoutingTable:ReconnectMaxDelay"] = "00:00:00.200",
        };
        foreach (var (k, v) in settings ?? new Dictionary<string, string?>()) config[k] = v;
        builder.Configuration.AddInMemoryCollection(config);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        services?.Invoke(builder.Services);
        builder.AddServiceDefaults();
        builder.AddGateway();
        var app = builder.Build();
        app.MapGateway();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new GatewayHost(app, new Uri(address.Replace("localhost", "127.0.0.1")));
    }

    /// <summary>Waits (event-driven, bounded) until the gateway holds routing table <paramref name="version"/>.</summary>
    public async Task WaitForTableAsync(long version, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var seen = Routes.Current;
            if (Routes.Synced && seen.Version == version) return;
            await Routes.WaitForChangeAsync(seen, cts.Token);
        }
    }

    public HttpRequestMessage Chat(string model, bool stream = false, string? apiKey = null, string path = "/v1/chat/completions")
    {
        var body = path.EndsWith("chat/completions", StringComparison.Ordinal)
            ? $$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}],"stream":{{(stream ? "true" : "false")}},"max_tokens":5}"""
            : $$"""{"model":"{{model}}","prompt":"hi","stream":{{(stream ? "true" : "false")}},"max_tokens":5}""";
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        if (apiKey is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return request;
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
