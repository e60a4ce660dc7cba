using System.Net;
using System.Text;
using System.Text.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

public sealed class AliasTests
{
    [Fact]
    public async Task An_alias_sends_each_session_to_one_version_with_the_model_rewritten()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "support-v1", "support-v2");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)],
            Adapter("support-v1", endpoints: ("e1", Residency.Loaded)), Adapter("support-v2", endpoints: ("e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Aliases:support:support-v1"] = "50",
            ["Gateway:Aliases:support:support-v2"] = "50",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);

        var seen = new HashSet<string>();
        for (var session = 0; session < 12; session++)
        {
            string? first = null;
            for (var i = 0; i < 3; i++)
            {
                const string body = """{"model":"support","messages":[{"role":"user","content":"ünïcode ✓"}],"temperature":0}""";
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
                request.Headers.Add("x-session-id", $"session-{session}");
                using var response = await gw.Client.SendAsync(request);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var received = engine.Received.Last();
                first ??= received.Model;
                Assert.Equal(first, received.Model);
                // Only the model changed: everything else reached the engine byte for byte.
                Assert.Equal(body.Replace("\"support\"", $"\"{received.Model}\""), Encoding.UTF8.GetString(received.Body));
            }
            seen.Add(first!);
        }
        Assert.Equal(["support-v1", "support-v2"], seen.Order());

        using var json = JsonDocument.Parse(await gw.Client.GetStringAsync("/v1/models"));
        Assert.Contains(json.RootElement.GetProperty("data").EnumerateArray(), c => c.GetProperty("id").GetString() == "support");
    }
}
