// Elementwise Add/Sub/Mul of two streams (residual additions), PE lanes per beat.
//
// out = a + b, a - b, b - a or a * b (OP 0..3) in a wide signed width, truncated
// to OUT_BITS. A beat leaves when both inputs have one and the output is free.
module eltwise_stream2 #(
    parameter int PE       = 1,
    parameter int A_BITS   = 4,
    parameter bit A_SIGNED = 0,
    parameter int B_BITS   = 4,
    parameter bit B_SIGNED = 0,
    parameter int OUT_BITS = 5,
    parameter int OP       = 0
) (
    input  logic                    clk,
    input  logic                    rst_n,
    input  logic [PE*A_BITS-1:0]    a_tdata,
    input  logic                    a_tvalid,
    output logic                    a_tready,
    input  logic [PE*B_BITS-1:0]    b_tdata,
    input  logic                    b_tvalid,
    output logic                    b_tready,
    output logic [PE*OUT_BITS-1:0]  out_tdata,
    output logic                    out_tvalid,
    input  logic                    out_tready
);
    localparam int WW = A_BITS + B_BITS + 2;
    logic free, fire;
    logic [PE*OUT_BITS-1:0] y;
    assign free = !out_tvalid || out_tready;
    assign fire = a_tvalid && b_tvalid && free;
    // AXI-Stream lets TREADY depend on TVALID (here: the other input's).
    assign a_tready = b_tvalid && free;
    assign b_tready = a_tvalid && free;
    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic signed [WW-1:0] a, b, r;
            a = A_SIGNED ? WW'($signed(a_tdata[p*A_BITS +: A_BITS])) : WW'($unsigned(a_tdata[p*A_BITS +: A_BITS]));
            b = B_SIGNED ? WW'($signed(b_tdata[p*B_BITS +: B_BITS])) : WW'($unsigned(b_tdata[p*B_BITS +: B_BITS]));
            case (OP)
                0: r = a + b;
                1: r = a - b;
                2: r = b - a;
                default: r = a * b;
            endcase
            y[p*OUT_BITS +: OUT_BITS] = OUT_BITS'(r);
        end
    end
    always_ff @(posedge clk) begin
        if (!rst_n) out_tvalid <= 1'b0;
        else if (free) out_tvalid <= fire;
        if (fire) out_tdata <= y;
    end
endmodule
