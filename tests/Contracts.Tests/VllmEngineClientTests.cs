using HybridServing.Contracts.Engines;

namespace HybridServing.Contracts.Tests;

public sealed class VllmEngineClientTests
{
    [Theory]
    [InlineData("{\"error\":{\"message\":\"The lora adapter 'x' cannot be found.\",\"type\":\"NotFoundError\",\"param\":null,\"code\":404}}", "NotFoundError", "The lora adapter 'x' cannot be found.")]
    [InlineData("{\"error\":\"Unauthorized\"}", null, "Unauthorized")]
    [InlineData("{\"detail\":\"Not Found\"}", null, "Not Found")]
    [InlineData("<html>bad gateway</html>", null, "<html>bad gateway</html>")]
    public void Error_bodies_of_every_shape_give_a_message(string body, string? type, string message)
    {
        Assert.Equal((type, message), VllmEngineClient.ParseError(body));
    }
}
