using System.Net;
using System.Net.Http.Headers;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests.Tenancy;

/// <summary>
/// The gateway with known API keys (a tenant's, the admin key, the engines' key) serving, refusing and limiting
/// requests: no key appears in any log line (Debug and up), span, <c>/metrics</c> or answer, and the engine is sent only the
/// engine key, never the client's.
/// </summary>
public sealed class SecretLeakTests
{
    private const string TenantKey = "sk-tenant-KnownSecret-4f2a9c";
    private const string AdminKey = "sk-admin-KnownSecret-77b3e1";
    private const string EngineKey = "engine-KnownSecret-0d9e8f";

    [Fact]
    public async Task API_keys_never_appear_in_logs_spans_metrics_or_answers()
    {
        using var scan = new SecretScan(TenantKey, AdminKey, EngineKey);
        await using var engine = await FakeEngine.StartAsync("e1", "sql-lora");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("sql-lora", "default", ("e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Tenancy:RequireApiKey"] = "true",
            ["Gateway:Tenants:0:Name"] = "team",
            ["Gateway:Tenants:0:ApiKey"] = TenantKey,
            ["Gateway:Tenants:0:Namespaces:0"] = "default",
            ["Gateway:Tenancy:AdminApiKey"] = AdminKey,
            ["Gateway:EngineApiKey"] = EngineKey,
            ["Gateway:RateLimits:Adapters:sql-lora"] = "2",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
            // Every log on, the framework's request logs too (they are at Debug by default): none may carry a key.
            ["Logging:LogLevel:Default"] = "Debug",
        }, services =>
        {
            services.AddSingleton<ILoggerProvider>(scan);
            services.Configure<LoggerFilterOptions>(o => o.MinLevel = LogLevel.Debug);
        });
        await gw.WaitForTableAsync(1);

        async Task<HttpStatusCode> SendAsync(HttpRequestMessage request, string what)
        {
            using (request)
            using (var response = await gw.Client.SendAsync(request))
            {
                scan.Check($"{what}: answer headers", response.Headers.ToString() + response.Content.Headers);
                scan.Check($"{what}: answer body", await response.Content.ReadAsStringAsync());
                return response.StatusCode;
            }
        }
        HttpRequestMessage Get(string path, string key) => new(HttpMethod.Get, path) { Headers = { Authorization = new AuthenticationHeaderValue("Bearer", key) } };

        Assert.Equal(HttpStatusCode.OK, await SendAsync(gw.Chat("sql-lora", apiKey: TenantKey), "chat"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(gw.Chat("sql-lora", stream: true, apiKey: TenantKey), "stream"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(gw.Chat(Base, apiKey: TenantKey, path: "/v1/completions"), "completion"));
        Assert.Equal(HttpStatusCode.NotFound, await SendAsync(gw.Chat("nope", apiKey: TenantKey), "404"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await SendAsync(gw.Chat("sql-lora", apiKey: TenantKey), "429"));
        // Keys that are not quite right: an echo of what the client sent would carry the real key.
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(gw.Chat("sql-lora", apiKey: TenantKey + "x"), "401 near key"));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(gw.Chat("sql-lora", apiKey: "x" + AdminKey), "401 admin key as tenant"));
        var basic = gw.Chat("sql-lora");
        basic.Headers.TryAddWithoutValidation("Authorization", "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("u:" + TenantKey)));
        Assert.Equal(HttpStatusCode.Unauthorized, await SendAsync(basic, "401 basic"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Get("/v1/models", TenantKey), "models"));
        Assert.Equal(HttpStatusCode.OK, await SendAsync(Get("/admin/usage", AdminKey), "usage"));
        Assert.NotEqual(HttpStatusCode.OK, await SendAsync(Get("/admin/usage", TenantKey), "usage as tenant"));
        scan.Check("/metrics", await gw.Client.GetStringAsync("/metrics"));

        // The engine got the engine key on every request and never a client's key.
        Assert.NotEmpty(engine.Received);
        Assert.All(engine.Received, r => Assert.Equal("Bearer " + EngineKey, r.Authorization));
        if (scan.Problems(minLogLines: 10, minSpans: 5) is { } problems) Assert.Fail(problems);
    }
}
