using System.Net;
using System.Text.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

public sealed class TenancyTests
{
    private static Dictionary<string, string?> TwoTenants(bool hide = true) => new()
    {
        ["Gateway:Tenancy:RequireApiKey"] = "true",
        ["Gateway:Tenancy:HideForeignAdapters"] = hide ? "true" : "false",
        // The AppHost's development tenant, configured exactly as the AppHost does it.
        ["Gateway:Tenants:0:Name"] = "dev",
        ["Gateway:Tenants:0:ApiKey"] = "dev-key",
        ["Gateway:Tenants:0:Namespaces:0"] = "default",
        ["Gateway:Tenants:1:Name"] = "team-a",
        ["Gateway:Tenants:1:ApiKey"] = "key-a",
        ["Gateway:Tenants:1:Namespaces:0"] = "team-a",
        ["Gateway:Tenants:2:Name"] = "team-b",
        ["Gateway:Tenants:2:ApiKey"] = "key-b",
        ["Gateway:Tenants:2:Namespaces:0"] = "team-b",
        ["Gateway:Load:ScrapeInterval"] = "00:00:00",
    };

    private static RoutingTable TenantTable(Uri engine) => Table(1, [Engine("e1", engine)],
        Adapter("a-lora", "team-a", ("e1", Residency.Loaded)),
        Adapter("b-lora", "team-b", ("e1", Residency.Loaded)),
        Adapter("sql-lora", "default", ("e1", Residency.Loaded)));

    private static async Task<List<string>> ListAsync(GatewayHost gw, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        request.Headers.Authorization = new("Bearer", key);
        using var response = await gw.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return [.. json.RootElement.GetProperty("data").EnumerateArray().Select(c => c.GetProperty("id").GetString()!)];
    }

    [Fact]
    public async Task A_tenant_lists_and_calls_only_its_own_adapters()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "a-lora", "b-lora", "sql-lora");
        await using var cp = await FakeControlPlane.StartAsync(TenantTable(engine.Url));
        await using var gw = await GatewayHost.StartAsync(cp.Url, TwoTenants());
        await gw.WaitForTableAsync(1);

        Assert.Equal([Base, "a-lora"], await ListAsync(gw, "key-a"));
        Assert.Equal([Base, "b-lora"], await ListAsync(gw, "key-b"));
        Assert.Equal([Base, "sql-lora"], await ListAsync(gw, "dev-key"));

        using (var own = await gw.Client.SendAsync(gw.Chat("a-lora", apiKey: "key-a")))
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        using (var foreign = await gw.Client.SendAsync(gw.Chat("b-lora", apiKey: "key-a")))
        {
            // Indistinguishable from a model that does not exist: no existence leak across tenants.
            Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
            Assert.Contains("The model `b-lora` does not exist.", await foreign.Content.ReadAsStringAsync());
        }
        using (var single = new HttpRequestMessage(HttpMethod.Get, "/v1/models/b-lora"))
        {
            single.Headers.Authorization = new("Bearer", "key-a");
            using var response = await gw.Client.SendAsync(single);
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }
        using (var baseModel = await gw.Client.SendAsync(gw.Chat(Base, apiKey: "key-b")))
            Assert.Equal(HttpStatusCode.OK, baseModel.StatusCode);
        using (var dev = await gw.Client.SendAsync(gw.Chat("sql-lora", apiKey: "dev-key")))
            Assert.Equal(HttpStatusCode.OK, dev.StatusCode);

        Assert.DoesNotContain(engine.Received, r => r.Model == "b-lora");
    }

    [Fact]
    public async Task Foreign_adapters_answer_403_when_configured_to()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "a-lora", "b-lora");
        await using var cp = await FakeControlPlane.StartAsync(TenantTable(engine.Url));
        await using var gw = await GatewayHost.StartAsync(cp.Url, TwoTenants(hide: false));
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("b-lora", apiKey: "key-a"));
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("PermissionDeniedError", json.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(engine.Received);
    }

    [Theory]
    [InlineData(null, "didn't provide an API key")]
    [InlineData("Bearer wrong-key", "Incorrect API key provided.")]
    [InlineData("Bearer ", "must be 'Bearer <key>'")]
    [InlineData("Basic ZGV2LWtleQ==", "must be 'Bearer <key>'")]
    [InlineData("Bearer dev-key2", "Incorrect API key provided.")]
    public async Task Missing_or_wrong_keys_get_401(string? authorization, string message)
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(TenantTable(engine.Url));
        await using var gw = await GatewayHost.StartAsync(cp.Url, TwoTenants());
        await gw.WaitForTableAsync(1);

        foreach (var (method, path) in new[] { (HttpMethod.Post, "/v1/chat/completions"), (HttpMethod.Get, "/v1/models") })
        {
            using var request = method == HttpMethod.Post ? gw.Chat(Base) : new HttpRequestMessage(method, path);
            if (authorization is not null) request.Headers.TryAddWithoutValidation("Authorization", authorization);
            using var response = await gw.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.Single().Scheme);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Contains(message, json.RootElement.GetProperty("error").GetProperty("message").GetString());
            Assert.Equal("AuthenticationError", json.RootElement.GetProperty("error").GetProperty("type").GetString());
        }
        Assert.Empty(engine.Received);
    }

    [Fact]
    public async Task Tenant_and_adapter_rate_limits_answer_429_with_retry_after()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "a-lora", "b-lora", "sql-lora");
        await using var cp = await FakeControlPlane.StartAsync(TenantTable(engine.Url));
        var settings = TwoTenants();
        settings["Gateway:Tenants:1:RequestsPerMinute"] = "2";
        settings["Gateway:RateLimits:Adapters:sql-lora"] = "1";
        await using var gw = await GatewayHost.StartAsync(cp.Url, settings);
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 2; i++)
        {
            using var ok = await gw.Client.SendAsync(gw.Chat("a-lora", apiKey: "key-a"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var limited = await gw.Client.SendAsync(gw.Chat(Base, apiKey: "key-a")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
            Assert.InRange(limited.Headers.RetryAfter!.Delta!.Value.TotalSeconds, 1, 60);
            using var json = JsonDocument.Parse(await limited.Content.ReadAsStringAsync());
            Assert.Equal("RateLimitError", json.RootElement.GetProperty("error").GetProperty("type").GetString());
            Assert.Contains("tenant 'team-a'", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        }
        // Another tenant is unaffected; the per-adapter limit applies across tenants.
        using (var other = await gw.Client.SendAsync(gw.Chat("sql-lora", apiKey: "dev-key")))
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        using (var adapterLimited = await gw.Client.SendAsync(gw.Chat("sql-lora", apiKey: "dev-key")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, adapterLimited.StatusCode);
            Assert.Contains("adapter 'sql-lora'", await adapterLimited.Content.ReadAsStringAsync());
        }
        using (var baseOk = await gw.Client.SendAsync(gw.Chat(Base, apiKey: "dev-key")))
            Assert.Equal(HttpStatusCode.OK, baseOk.StatusCode);
        Assert.Equal(4, engine.Received.Count);
    }

    [Fact]
    public async Task Token_limits_use_engine_usage_and_the_admin_view_reports_it()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "a-lora");
        await using var cp = await FakeControlPlane.StartAsync(TenantTable(engine.Url));
        var settings = TwoTenants();
        settings["Gateway:Tenants:1:TokensPerMinute"] = "10"; // the fake engine reports 7 tokens per answer
        settings["Gateway:Tenancy:AdminApiKey"] = "admin-key";
        await using var gw = await GatewayHost.StartAsync(cp.Url, settings);
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 2; i++)
        {
            using var ok = await gw.Client.SendAsync(gw.Chat("a-lora", apiKey: "key-a"));
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }
        using (var limited = await gw.Client.SendAsync(gw.Chat("a-lora", apiKey: "key-a")))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, limited.StatusCode);
            Assert.Contains("14 of 10 tokens", await limited.Content.ReadAsStringAsync());
            Assert.NotNull(limited.Headers.RetryAfter);
        }
        using (var otherTenant = await gw.Client.SendAsync(gw.Chat(Base, apiKey: "key-b")))
            Assert.Equal(HttpStatusCode.OK, otherTenant.StatusCode);

        async Task<HttpResponseMessage> Admin(string? key)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/admin/usage");
            if (key is not null) request.Headers.Authorization = new("Bearer", key);
            return await gw.Client.SendAsync(request);
        }
        using (var noKey = await Admin(null)) Assert.Equal(HttpStatusCode.Unauthorized, noKey.StatusCode);
        using (var tenantKey = await Admin("key-a")) Assert.Equal(HttpStatusCode.Forbidden, tenantKey.StatusCode);
        using var view = await Admin("admin-key");
        Assert.Equal(HttpStatusCode.OK, view.StatusCode);
        using var json = JsonDocument.Parse(await view.Content.ReadAsStringAsync());
        var a = json.RootElement.GetProperty("tenants").EnumerateArray().Single(t => t.GetProperty("tenant").GetString() == "team-a");
        Assert.Equal(3, a.GetProperty("requests").GetInt64());
        Assert.Equal(2, a.GetProperty("succeeded").GetInt64());
        Assert.Equal(1, a.GetProperty("rateLimited").GetInt64());
        Assert.Equal(6, a.GetProperty("promptTokens").GetInt64());
        Assert.Equal(8, a.GetProperty("completionTokens").GetInt64());
        Assert.Equal(3, a.GetProperty("requestsByModel").GetProperty("a-lora").GetInt64());
    }
}
